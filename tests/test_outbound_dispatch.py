"""The dispatcher against a real HTTP receiver that verifies every delivery with the reference
Standard Webhooks library. Failing, hanging and recovering receivers; retries, giving up,
replay, disabling; SSRF checks at connect time. On SQLite and PostgreSQL (``--db``).

Backoffs pass by moving the clock seam, never by sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchant_backend import metrics
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, objects, outbox
from merchant_backend.store import destinations as destination_store
from merchant_backend.sync.handlers import snapshot_of
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.outbound_support import (
    Receiver,
    add_destination,
    attempts,
    delivery_states,
    messages,
    newest_per_object,
)
from tests.test_outbound_outbox import STORM, read_api_objects
from tests.test_sync_properties import deliveries
from tests.webhook_support import connected_merchant, post_ok, wait_for


class Clock:
    def __init__(self) -> None:
        self.t = time.time() + 5  # ahead, so what was just written is due

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("merchant_backend.clock.now", c)
    return c


@pytest.fixture
def outbound_rt(runtime: Runtime) -> Runtime:
    s = runtime.settings.model_copy(
        update={
            "outbound_allow_private": True,
            "outbound_timeout": 2.0,
            "outbound_lease_seconds": 30.0,
            "outbound_destination_concurrency": 2,
            "outbound_concurrency": 8,
            "outbound_poll_interval": 0.05,
        }
    )
    return Runtime(s, engine=runtime.engine)


@pytest.fixture
def dispatcher(outbound_rt: Runtime) -> Iterator[Dispatcher]:
    d = Dispatcher(outbound_rt, dispatcher_id="test-dispatcher")
    yield d
    d.stop(wait=False)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def receiver(
    receivers: list[Receiver], runtime: Runtime, merchant_id: str | None, **kw: Any
) -> tuple[Receiver, Any]:
    r = Receiver(**kw)
    receivers.append(r)
    dest, secret = add_destination(runtime, merchant_id, r.url)
    r.secret = secret
    return r, dest


def storm(client: TestClient, worker: Worker, merchant_id: str, *names: str) -> None:
    for name in names or ("pi_fails_then_succeeds", "dispute_lost", "customer_updates"):
        for evt in sf.lifecycle(name).events:
            post_ok(client, merchant_id, evt)
    worker.drain()


def test_every_change_arrives_signed_per_standard_webhooks(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    r, dest = receiver(receivers, runtime, m.id)
    delivered_before = metrics.OUTBOUND_DELIVERIES.labels("delivered")._value.get()
    storm(client, worker, m.id)
    dispatcher.drain()
    msgs = messages(runtime.engine, m.id)
    assert r.rejected == []
    # Verified by the reference library, byte for byte what the outbox holds, each once.
    assert {x.webhook_id: x.message for x in r.received} == {x["id"]: x for x in msgs}
    assert len(r.received) == len(msgs)
    assert newest_per_object(x.message for x in r.received) == read_api_objects(client, m)
    assert delivery_states(runtime.engine, dest.id) == {"delivered": len(msgs)}
    assert {a.status_code for a in attempts(runtime.engine, dest.id)} == {200}
    assert metrics.OUTBOUND_DELIVERIES.labels("delivered")._value.get() == delivered_before + len(
        msgs
    )
    sample = r.received[0].headers
    assert sample["content-type"] == "application/json"
    assert sample["webhook-signature"].startswith("v1,")


def test_a_failing_receiver_gets_every_change_once_in_effect_after_it_recovers(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
    clock: Clock,
) -> None:
    m = connected_merchant(runtime)
    r, dest = receiver(receivers, runtime, m.id, mode="fail", verify_timestamps=False)
    storm(client, worker, m.id)
    msgs = messages(runtime.engine, m.id)
    for _ in range(4):  # four rounds of failures, the clock moving past each backoff
        dispatcher.drain()
        clock.t += 3600
    assert r.received == [] and r.requests > 0
    states = delivery_states(runtime.engine, dest.id)
    assert set(states) <= {"retrying", "pending"}, states
    r.mode = "ok"
    for _ in range(len(msgs) + 2):  # one object's messages go one after another
        dispatcher.drain()
        clock.t += 3600
    assert delivery_states(runtime.engine, dest.id) == {"delivered": len(msgs)}
    # Every message arrived; a retry repeats its webhook-id, so in effect each arrived once.
    assert set(r.by_id()) == {x["id"] for x in msgs}
    assert newest_per_object(x.message for x in r.by_id().values()) == read_api_objects(client, m)
    # One object's messages reached the receiver in sequence order (never older after newer).
    per_object: dict[str, list[int]] = {}
    for x in r.received:
        per_object.setdefault(x.message["data"]["object"]["id"], []).append(x.message["sequence"])
    assert all(seqs == sorted(seqs) for seqs in per_object.values()), per_object
    log = attempts(runtime.engine, dest.id)
    assert {a.status_code for a in log} == {500, 200}
    assert max(a.attempt for a in log) >= 4


def test_a_hanging_destination_does_not_delay_a_healthy_one(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    outbound_rt: Runtime,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    slow, _slow_dest = receiver(receivers, runtime, m.id, mode="hang")
    healthy, healthy_dest = receiver(receivers, runtime, m.id)
    storm(client, worker, m.id)
    msgs = messages(runtime.engine, m.id)
    d = Dispatcher(outbound_rt, dispatcher_id="threaded")
    thread = d.start_thread()
    try:
        assert slow.got_request.wait(10)
        # While the slow receiver holds its requests, the healthy one gets everything.
        assert healthy.wait_for(len(msgs), timeout=20)
        assert not slow.release.is_set()
        # The slow one holds at most its own share of the dispatcher.
        assert slow.requests <= outbound_rt.settings.outbound_destination_concurrency
        wait_for(
            lambda: delivery_states(runtime.engine, healthy_dest.id) == {"delivered": len(msgs)},
            what="the healthy destination's deliveries recorded",
        )
        assert not slow.release.is_set()
        slow.release.set()
    finally:
        d.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_a_timeout_is_a_failed_attempt(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    outbound_rt: Runtime,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    slow, dest = receiver(receivers, runtime, m.id, mode="hang")
    storm(client, worker, m.id, "customer_updates")
    rt = Runtime(
        outbound_rt.settings.model_copy(update={"outbound_timeout": 0.3}), engine=runtime.engine
    )
    d = Dispatcher(rt)
    try:
        d.drain()
    finally:
        slow.release.set()
        d.stop()
    log = attempts(runtime.engine, dest.id)
    assert log and all(a.status_code is None and "no answer within 0.3 s" in a.error for a in log)
    assert set(delivery_states(runtime.engine, dest.id)) <= {"retrying", "pending"}


def test_given_up_after_the_retry_window_then_replayed(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
    clock: Clock,
) -> None:
    m = connected_merchant(runtime)
    r, dest = receiver(receivers, runtime, m.id, mode="fail", verify_timestamps=False)
    storm(client, worker, m.id, "customer_updates")
    msgs = messages(runtime.engine, m.id)
    start = clock.t
    while clock.t < start + 4 * 86400:
        dispatcher.drain()
        clock.t += 6 * 3600
    dispatcher.drain()
    states = delivery_states(runtime.engine, dest.id)
    # The first message failed for good; later ones of the same object wait behind it, and
    # then get their own three days.
    assert states.get("failed", 0) >= 1
    with db.write(runtime.engine) as conn:
        replayed = outbox.replay_failed(conn, dest.id, since=0, at=clock.t)
    assert replayed == states["failed"]
    r.mode = "ok"
    for _ in range(len(msgs) + 2):
        dispatcher.drain()
        clock.t += 6 * 3600
    assert delivery_states(runtime.engine, dest.id) == {"delivered": len(msgs)}
    assert set(r.by_id()) == {x["id"] for x in msgs}


def test_a_destination_failing_for_five_days_is_disabled(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
    clock: Clock,
) -> None:
    m = connected_merchant(runtime)
    r, dest = receiver(receivers, runtime, m.id, mode="fail", verify_timestamps=False)
    events = sf.lifecycle("customer_updates").events
    start = clock.t
    for n, evt in enumerate(events):
        # Signed when the (moved) clock says: the webhook checks its tolerance by the same clock.
        post_ok(client, m.id, evt, timestamp=int(clock.t))
        worker.drain()
        dispatcher.drain()
        clock.t = start + (n + 1) * 2.5 * 86400  # a failure every 2.5 days
        dispatcher.drain()
    with db.read(runtime.engine) as conn:
        fresh = destination_store.by_id(conn, dest.id)
    assert fresh is not None and not fresh.enabled
    assert fresh.disabled_reason is not None
    assert fresh.disabled_reason.startswith("every delivery failed for 5 days; last: HTTP 500")
    # Disabled: nothing more is sent to it.
    requests = r.requests
    clock.t += 86400
    dispatcher.drain()
    assert r.requests == requests


def test_redirects_are_not_followed_and_answers_are_read_only_in_part(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    _r, dest = receiver(receivers, runtime, m.id, mode="redirect")
    storm(client, worker, m.id, "customer_updates")
    dispatcher.drain()
    log = attempts(runtime.engine, dest.id)
    assert log and all(a.status_code == 302 for a in log)
    assert all("not followed" in a.error for a in log)
    assert "delivered" not in delivery_states(runtime.engine, dest.id)

    _big, big_dest = receiver(receivers, runtime, m.id, mode="big")
    storm(client, worker, m.id, "account_requirements")
    dispatcher.drain()
    log = attempts(runtime.engine, big_dest.id)
    assert log and all(a.status_code == 200 and len(a.excerpt) <= 500 for a in log)


def test_connect_time_checks_use_the_checked_address(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    outbound_rt: Runtime,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    r = Receiver()
    receivers.append(r)
    port = r.url.split(":")[2].split("/")[0]
    dest, secret = add_destination(runtime, m.id, f"http://hooks.internal.test:{port}/hooks")
    r.secret = secret
    storm(client, worker, m.id, "customer_updates")
    answers = {"hooks.internal.test": ["10.1.2.3"]}

    def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    strict = Runtime(
        outbound_rt.settings.model_copy(update={"outbound_allow_private": False}),
        engine=runtime.engine,
    )
    Dispatcher(strict, resolve=resolve).drain()
    log = attempts(runtime.engine, dest.id)
    assert log and all(
        "refused" in a.error and "10.1.2.3 is a private address" in a.error for a in log
    )
    assert r.requests == 0
    # Allowed, the name (which the system cannot resolve) is reached at the address checked.
    answers["hooks.internal.test"] = ["127.0.0.1"]
    with db.write(runtime.engine) as conn:
        conn.execute(outbox.outbound_deliveries.update().values(next_attempt_at=0))
    Dispatcher(outbound_rt, resolve=resolve).drain()
    assert len(r.by_id()) == len(messages(runtime.engine, m.id))
    assert r.received[0].headers["host"] == f"hooks.internal.test:{port}"


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_storms_end_with_the_receiver_holding_what_the_read_api_shows(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    data: st.DataObject,
) -> None:
    """All 15 event types, any order, with repeats, delivered and dispatched at random moments:
    per object, the newest message the receiver verified equals the read API's object."""
    subset, plan = data.draw(deliveries(STORM), label="delivery")
    m = connected_merchant(runtime)
    r = Receiver()
    try:
        _dest, r.secret = add_destination(runtime, m.id, r.url)
        for idx, drain in plan:
            post_ok(client, m.id, subset[idx])
            if drain:
                worker.drain()
                dispatcher.drain()
        worker.drain()
        dispatcher.drain()
        assert r.rejected == []
        assert len(r.received) == len(r.by_id())  # none twice
        assert newest_per_object(x.message for x in r.received) == read_api_objects(client, m)
    finally:
        r.close()


def test_several_dispatchers_share_the_work_without_sending_twice(
    runtime: Runtime, outbound_rt: Runtime, receivers: list[Receiver]
) -> None:
    m = connected_merchant(runtime)
    r, dest = receiver(receivers, runtime, m.id)
    snaps = [
        snapshot_of(
            "customer",
            sf.obj("customer", id=f"cus_{n:05d}"),
            event_id=f"evt_{n}",
            event_type="customer.updated",
            event_created=1_760_000_000,
        )
        for n in range(300)
    ]
    with db.write(runtime.engine) as conn:
        objects.apply_snapshots(conn, m.id, "stage", snaps)
    rt = Runtime(
        outbound_rt.settings.model_copy(update={"outbound_destination_concurrency": 4}),
        engine=runtime.engine,
    )
    several = [Dispatcher(rt, dispatcher_id=f"d{n}") for n in range(3)]
    threads = [threading.Thread(target=d.drain) for d in several]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for d in several:
        d.stop()
    assert delivery_states(runtime.engine, dest.id) == {"delivered": 300}
    assert len(r.received) == 300 == len(r.by_id())
    assert r.rejected == []


def test_metrics_count_deliveries_by_outcome_and_the_lag(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    dispatcher: Dispatcher,
    receivers: list[Receiver],
) -> None:
    m = connected_merchant(runtime)
    receiver(receivers, runtime, m.id)
    before = _metric(client, "merchant_backend_outbound_deliveries_total", outcome="delivered")
    lag_before = _metric(client, "merchant_backend_outbound_lag_seconds_count")
    storm(client, worker, m.id, "customer_updates")
    dispatcher.drain()
    n = len(messages(runtime.engine, m.id))
    assert (
        _metric(client, "merchant_backend_outbound_deliveries_total", outcome="delivered")
        == before + n
    )
    assert _metric(client, "merchant_backend_outbound_lag_seconds_count") == lag_before + n


def _metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
