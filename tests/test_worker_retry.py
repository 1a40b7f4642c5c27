"""The worker's failure handling (issue 3, item 4): retry with backoff and jitter, dead after
the last attempt with the error kept, replay by CLI and API, leases that run out, and one bad
event never taking good ones down with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox, objects
from merchant_backend.store.schema import events
from merchant_backend.sync.retry import gives_up, retry_delay
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import FakeClock, MerchantCtx
from tests.foundation_helpers import cli_env, run_cli
from tests.webhook_support import inbox_rows, post_ok, projection, wait_for

MAX_ATTEMPTS = 4


@pytest.fixture
def clock(clock: FakeClock) -> FakeClock:
    """The clock stands still; the test moves it instead of waiting for backoffs to pass."""
    clock.freeze()
    return clock


@pytest.fixture
def retrying(runtime: Runtime) -> Worker:
    s = runtime.settings.model_copy(update={"worker_max_attempts": MAX_ATTEMPTS})
    return Worker(runtime.engine, s, worker_id="retrying-worker")


def entry(client: TestClient, m: MerchantCtx, evt_id: str) -> Any:
    r = client.get(f"/api/v1/merchants/{m.id}/stage/events/{evt_id}", headers=m.auth)
    assert r.status_code == 200, r.text
    return r.json()


def malformed_event() -> dict[str, Any]:
    """A payment_intent.* event that carries a customer: it can never be applied."""
    return sf.event("payment_intent.succeeded", sf.obj("customer"))


@pytest.fixture
def broken_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """While ``state["broken"]``, writing projections fails like a database outage."""
    state = {"broken": True}
    original = objects.apply_snapshots_many

    def apply(*args: Any, **kw: Any) -> Any:
        if state["broken"]:
            raise OperationalError("INSERT INTO stripe_objects", {}, Exception("server closed"))
        return original(*args, **kw)

    monkeypatch.setattr(objects, "apply_snapshots_many", apply)
    yield state


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(7)
    for attempts in range(1, 12):
        delays = [retry_delay(attempts, base=2.0, cap=300.0, rng=rng) for _ in range(200)]
        ceiling = min(300.0, 2.0**attempts)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 150  # jitter: no two waves alike
    assert retry_delay(5000, base=2.0, cap=3600.0, rng=rng) <= 3600.0  # no overflow
    assert not gives_up(3, 4) and gives_up(4, 4)


def test_failure_retries_with_backoff_then_goes_dead_keeping_the_error(
    client: TestClient, connected: MerchantCtx, retrying: Worker, clock: FakeClock
) -> None:
    evt = malformed_event()
    post_ok(client, connected.id, evt)
    for attempt in range(1, MAX_ATTEMPTS):
        failed_at = clock.t
        assert retrying.drain() == 1
        got = entry(client, connected, evt["id"])
        assert (got["state"], got["attempts"]) == ("failed", attempt)
        assert "carries a 'customer', expected payment_intent" in got["last_error"]
        (row,) = inbox_rows(retrying.engine, connected.id)
        delay = row.next_attempt_at - failed_at
        assert 2.0**attempt / 2 <= delay <= 2.0**attempt
        assert got["next_attempt_at"] == int(row.next_attempt_at)
        # Not due before its time...
        clock.t = row.next_attempt_at - 0.01
        assert retrying.drain() == 0
        clock.t = row.next_attempt_at + 0.01
    assert retrying.drain() == 1
    got = entry(client, connected, evt["id"])
    assert (got["state"], got["attempts"]) == ("dead", MAX_ATTEMPTS)
    assert "carries a 'customer'" in got["last_error"]
    clock.t += 10 * 86400
    assert retrying.drain() == 0  # dead stays dead until replayed
    listed = client.get(
        f"/api/v1/merchants/{connected.id}/stage/events",
        params={"state": "dead"},
        headers=connected.auth,
    ).json()
    assert [e["id"] for e in listed["data"]] == [evt["id"]]


def test_events_failing_together_come_back_at_different_times(
    client: TestClient, connected: MerchantCtx, retrying: Worker, clock: FakeClock
) -> None:
    for _ in range(12):
        post_ok(client, connected.id, malformed_event())
    assert retrying.drain() == 12
    due = {row.next_attempt_at for row in inbox_rows(retrying.engine, connected.id)}
    assert len(due) == 12
    assert max(due) - min(due) > 0.1


def _fail_until_dead(retrying: Worker, clock: FakeClock, m: MerchantCtx) -> None:
    for _ in range(MAX_ATTEMPTS):
        assert retrying.drain() == 1
        clock.t += 3600
    (row,) = inbox_rows(retrying.engine, m.id)
    assert row.state == "dead"


def test_api_replay_puts_a_dead_event_back_and_it_applies(
    client: TestClient,
    connected: MerchantCtx,
    retrying: Worker,
    clock: FakeClock,
    broken_database: dict[str, bool],
) -> None:
    succeeded = sf.pi_succeeds(1_760_000_000).events[-1]
    post_ok(client, connected.id, succeeded)
    _fail_until_dead(retrying, clock, connected)
    got = entry(client, connected, succeeded["id"])
    assert got["state"] == "dead"
    assert "server closed" in got["last_error"]
    assert "INSERT" not in got["last_error"]  # the driver's message, not SQL with the data

    broken_database["broken"] = False
    r = client.post(
        f"/api/v1/merchants/{connected.id}/stage/events/{succeeded['id']}/replay",
        headers=connected.auth,
    )
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["attempts"]) == ("pending", 0)
    assert retrying.drain() == 1
    got = entry(client, connected, succeeded["id"])
    assert (got["state"], got["attempts"], got["last_error"]) == ("applied", 1, None)
    pi = projection(retrying.engine, connected.id)[succeeded["data"]["object"]["id"]]
    assert pi["status"] == "succeeded"
    r = client.post(
        f"/api/v1/merchants/{connected.id}/stage/events/evt_unknown/replay",
        headers=connected.auth,
    )
    assert r.status_code == 404


def test_cli_replay_puts_a_dead_event_back_and_it_applies(
    client: TestClient,
    settings: Settings,
    connected: MerchantCtx,
    retrying: Worker,
    clock: FakeClock,
    broken_database: dict[str, bool],
) -> None:
    (evt,) = sf.dispute_lost(1_760_000_000).events[-1:]
    post_ok(client, connected.id, evt)
    _fail_until_dead(retrying, clock, connected)
    broken_database["broken"] = False
    result = run_cli(
        ["events", "replay", "--merchant", connected.id, "--env", "stage", evt["id"]],
        cli_env(settings),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "pending"
    assert retrying.drain() == 1
    assert entry(client, connected, evt["id"])["state"] == "applied"
    dispute = projection(retrying.engine, connected.id)[evt["data"]["object"]["id"]]
    assert dispute["status"] == "lost"


def test_replaying_an_applied_event_is_harmless(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    lc = sf.pi_succeeds(1_760_000_000)
    for evt in lc.events:
        post_ok(client, connected.id, evt)
    worker.drain()
    before = projection(runtime.engine, connected.id)
    # Replaying the oldest event must not roll the payment back to "requires_payment_method".
    r = client.post(
        f"/api/v1/merchants/{connected.id}/stage/events/{lc.events[0]['id']}/replay",
        headers=connected.auth,
    )
    assert r.status_code == 200
    assert worker.drain() == 1
    assert projection(runtime.engine, connected.id) == before


def test_one_event_the_database_refuses_does_not_fail_its_batch(
    client: TestClient,
    runtime: Runtime,
    connected: MerchantCtx,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = [sf.event("payment_intent.created", sf.payment_intent()) for _ in range(9)]
    poison = sf.event("payment_intent.created", sf.payment_intent())
    original = objects.apply_snapshots_many

    def apply(conn: Any, grouped: Any) -> Any:
        snaps = [s for group in grouped.values() for s in group]
        if any(s.stripe_id == poison["data"]["object"]["id"] for s in snaps):
            raise IntegrityError("INSERT", {}, Exception("value out of range"))
        return original(conn, grouped)

    monkeypatch.setattr(objects, "apply_snapshots_many", apply)
    for evt in [*good[:4], poison, *good[4:]]:
        post_ok(client, connected.id, evt)
    assert worker.drain() == 10
    states = {r.event_id: (r.state, r.attempts) for r in inbox_rows(runtime.engine, connected.id)}
    assert states.pop(poison["id"]) == ("failed", 1)
    assert set(states.values()) == {("applied", 1)}
    assert len(projection(runtime.engine, connected.id)) == 9


def test_a_dead_workers_lease_runs_out_and_another_worker_applies_the_event(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    s = runtime.settings.model_copy(update={"worker_lease_seconds": 0.5})
    lc = sf.pi_manual_capture(1_760_000_000)
    for evt in lc.events:
        post_ok(client, connected.id, evt)
    # What a worker leaves behind when it is killed after leasing, before committing.
    with db.write(runtime.engine) as conn:
        leased = inbox.claim(conn, "dead-worker", now=time.time(), lease_seconds=0.5, limit=100)
    assert len(leased) == 3
    alive = Worker(runtime.engine, s, worker_id="alive-worker")
    assert alive.drain() == 0  # the lease still holds
    assert {r.state for r in inbox_rows(runtime.engine, connected.id)} == {"processing"}
    wait_for(lambda: alive.drain() > 0, timeout=10)
    alive.drain()
    rows = inbox_rows(runtime.engine, connected.id)
    assert {(r.state, r.attempts) for r in rows} == {("applied", 2)}
    pi = projection(runtime.engine, connected.id)[lc.events[0]["data"]["object"]["id"]]
    assert pi["status"] == "succeeded"
    # The dead worker's late verdicts no longer count: the lease is not its any more.
    with db.write(runtime.engine) as conn:
        for item in leased:
            inbox.mark_failed(conn, item.id, "dead-worker", error="late", dead=True, retry_at=0)
    assert {r.state for r in inbox_rows(runtime.engine, connected.id)} == {"applied"}


def test_an_event_whose_workers_keep_dying_goes_dead(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    s = runtime.settings.model_copy(update={"worker_max_attempts": 2})
    evt = sf.event("payment_intent.created", sf.payment_intent())
    post_ok(client, connected.id, evt)
    t = time.time()
    for _ in range(3):  # leased and lost three times (e.g. it crashes the process)
        with db.write(runtime.engine) as conn:
            assert len(inbox.claim(conn, "doomed", now=t, lease_seconds=1, limit=10)) == 1
        t += 2
    with db.write(runtime.engine) as conn:  # the last lease ran out (it ends when it is due)
        gone = time.time() - 1
        conn.execute(update(events).values(lease_until=gone, next_attempt_at=gone))
    assert Worker(runtime.engine, s).drain() == 1
    (row,) = inbox_rows(runtime.engine, connected.id)
    assert row.state == "dead"
    assert "leased 4 times" in row.last_error
    assert projection(runtime.engine, connected.id) == {}
