"""Issue 9, item 6: retention of raw event bodies (store/retention.py).

Only applied and ignored events older than the cut-off lose their bodies; pending, failed and
dead ones, the projections and the per-object history stay exactly as they were; the rows stay,
so a late duplicate is still a duplicate; batches are small and ingest goes on between them.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.services import retention as retention_service
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox, objects, retention
from merchant_backend.store.schema import (
    events,
    object_events,
    outbound_attempts,
    outbound_deliveries,
    outbound_messages,
    stripe_objects,
)
from merchant_backend.sync.handlers import snapshot_of
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import FakeClock, MerchantCtx, make_merchant
from tests.foundation_helpers import cli_env, run_cli
from tests.outbound_support import add_destination
from tests.test_worker_retry import malformed_event
from tests.web_support import csrf_of, sign_in
from tests.webhook_support import post, post_ok, wait_for

DAY = 86400.0
NOW = 1_800_000_000.0
BEFORE = NOW - 90 * DAY


def rows(runtime: Runtime, table: Any) -> list[tuple[Any, ...]]:
    with runtime.engine.connect() as conn:
        return sorted((tuple(r) for r in conn.execute(select(table))), key=repr)


def age(runtime: Runtime, event_ids: list[str], received_at: float) -> None:
    """Make events look received (and last scheduled) at ``received_at``."""
    with db.write(runtime.engine) as conn:
        conn.execute(
            update(events)
            .where(events.c.event_id.in_(event_ids))
            .values(received_at=received_at, next_attempt_at=received_at)
        )


def set_state(runtime: Runtime, event_id: str, state: str) -> None:
    with db.write(runtime.engine) as conn:
        conn.execute(update(events).where(events.c.event_id == event_id).values(state=state))


def bodies(runtime: Runtime) -> dict[str, tuple[str, int]]:
    """event id → (state, body size)."""
    with runtime.engine.connect() as conn:
        return {
            r.event_id: (r.state, len(r.payload))
            for r in conn.execute(select(events.c.event_id, events.c.state, events.c.payload))
        }


@pytest.fixture
def inbox_of_all_kinds(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, worker: Worker
) -> dict[str, dict[str, Any]]:
    """Old events in every state, and recent applied ones."""
    made = {
        "applied": [sf.event("payment_intent.created", sf.payment_intent()) for _ in range(5)],
        "ignored": [sf.event("charge.succeeded", sf.obj("charge")) for _ in range(3)],
        "failed": [malformed_event()],
        "recent": [sf.event("customer.updated", sf.obj("customer")) for _ in range(2)],
    }
    for group in made.values():
        for evt in group:
            post_ok(client, connected.id, evt)
    worker.drain()
    pending = sf.event("payment_intent.created", sf.payment_intent())
    dead = sf.event("payment_intent.created", sf.payment_intent())
    for evt in (pending, dead):
        post_ok(client, connected.id, evt)
    set_state(runtime, dead["id"], "dead")
    made["pending"], made["dead"] = [pending], [dead]
    old = [e["id"] for k, group in made.items() if k != "recent" for e in group]
    age(runtime, old, BEFORE - 10 * DAY)
    age(runtime, [e["id"] for e in made["recent"]], NOW - DAY)
    return {e["id"]: e for group in made.values() for e in group} | {
        f"group:{k}": {"ids": [e["id"] for e in g]} for k, g in made.items()
    }


def ids(made: dict[str, Any], group: str) -> list[str]:
    return list(made[f"group:{group}"]["ids"])


def test_only_old_applied_and_ignored_bodies_go_and_nothing_else_changes(
    runtime: Runtime, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    before = bodies(runtime)
    projections, history = rows(runtime, stripe_objects), rows(runtime, object_events)
    prunable = ids(made, "applied") + ids(made, "ignored")
    expected_bytes = sum(before[i][1] for i in prunable)

    dry = retention.prune(runtime.engine, BEFORE, dry_run=True)
    assert (dry.events, dry.bytes) == (len(prunable), expected_bytes)
    assert bodies(runtime) == before  # a dry run changes nothing

    done = retention.prune(runtime.engine, BEFORE)
    assert (done.events, done.bytes, done.finished) == (len(prunable), expected_bytes, True)
    after = bodies(runtime)
    for event_id, (state, size) in before.items():
        if event_id in prunable:
            assert after[event_id] == (state, 0)
        else:
            assert after[event_id] == (state, size) and size > 0
    assert {before[i][0] for i in prunable} == {"applied", "ignored"}
    assert rows(runtime, stripe_objects) == projections
    assert rows(runtime, object_events) == history
    # Again: nothing left to do.
    again = retention.prune(runtime.engine, BEFORE)
    assert (again.events, again.bytes) == (0, 0)
    assert retention.prune(runtime.engine, BEFORE, dry_run=True).events == 0


def test_a_duplicate_after_pruning_is_still_a_duplicate_and_changes_nothing(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    retention.prune(runtime.engine, BEFORE)
    state = (bodies(runtime), rows(runtime, stripe_objects), rows(runtime, object_events))
    for event_id in ids(made, "applied") + ids(made, "ignored"):
        r = post(client, connected.id, made[event_id])
        assert r.status_code == 200 and r.json()["duplicate"] is True, r.text
    assert (bodies(runtime), rows(runtime, stripe_objects), rows(runtime, object_events)) == state


def test_a_pruned_event_reads_as_pruned_and_cannot_be_replayed(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    retention.prune(runtime.engine, BEFORE)
    pruned, kept = ids(made, "applied")[0], ids(made, "recent")[0]
    base = f"/api/v1/merchants/{connected.id}/stage/events"
    got = client.get(f"{base}/{pruned}", headers=connected.auth).json()
    assert (got["state"], got["pruned"], got["event"]) == ("applied", True, None)
    got = client.get(f"{base}/{kept}", headers=connected.auth).json()
    assert (got["pruned"], got["event"]["id"]) == (False, kept)
    with db.write(runtime.engine) as conn, pytest.raises(inbox.EventPruned):
        inbox.replay(conn, connected.id, "stage", pruned, NOW)
    with db.write(runtime.engine) as conn:
        assert inbox.replay(conn, connected.id, "stage", kept, NOW) is True
        assert inbox.replay(conn, connected.id, "stage", "evt_nothere", NOW) is False


def test_small_batches_let_webhooks_in_between_and_an_interrupted_run_resumes(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    total = len(ids(made, "applied") + ids(made, "ignored"))
    seen: list[int] = []
    between: list[int] = []

    def pause() -> bool:
        # Between two batches no transaction is open: a webhook commits at once.
        evt = sf.event("payment_intent.created", sf.payment_intent())
        between.append(post(client, connected.id, evt).status_code)
        return len(seen) == 2  # stop after the second batch

    first = retention.prune(
        runtime.engine, BEFORE, batch_size=2, pause=pause, on_batch=lambda r: seen.append(r.events)
    )
    assert seen == [2, 4] and not first.finished and between == [200, 200]
    rest = retention.prune(runtime.engine, BEFORE, batch_size=2)
    assert first.events + rest.events == total and rest.finished


def test_the_pruner_of_serve_uses_the_retention_days(
    runtime: Runtime, inbox_of_all_kinds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("merchant_backend.clock.now", lambda: NOW)
    made = inbox_of_all_kinds
    # 120 days: the old events (100 days) are not old enough yet.
    assert retention.Pruner(runtime.engine, 120, 3600).run_once().events == 0
    result = retention.Pruner(runtime.engine, 90, 3600).run_once()
    assert result.events == len(ids(made, "applied") + ids(made, "ignored"))


# ---- the command, the service and the pages ------------------------------------------------


def prunable_ids(made: dict[str, Any]) -> list[str]:
    return ids(made, "applied") + ids(made, "ignored")


def test_the_command_counts_prunes_and_refuses_a_bad_age(
    runtime: Runtime, settings: Settings, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    env = cli_env(settings)
    before = bodies(runtime)
    # The old events were received 100 days before NOW, some 60 days before the real clock.
    dry = run_cli(["events", "prune", "--older-than", "30d", "--dry-run"], env)
    assert dry.exit_code == 0, dry.output
    counted = json.loads(dry.stdout)
    assert (counted["events"], counted["dry_run"]) == (len(prunable_ids(made)), True)
    assert bodies(runtime) == before
    assert json.loads(run_cli(["events", "prune", "--dry-run"], env).stdout)["events"] == 0
    done = run_cli(["events", "prune", "--older-than", "30d"], env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["events"] == len(prunable_ids(made))
    assert all(bodies(runtime)[i][1] == 0 for i in prunable_ids(made))
    for bad in ("30", "30x", "²d", "-3d", "d"):
        r = run_cli(["events", "prune", "--older-than", bad], env)
        assert r.exit_code == 2 and '"field": "older_than"' in r.stderr, (bad, r.output)
    off = run_cli(["events", "prune"], {**env, "MERCHANT_BACKEND_EVENT_RETENTION_DAYS": "0"})
    assert off.exit_code == 2 and "retention is off" in off.stderr


class RecordedRests:
    """Stands in for the ``threading.Event`` the command rests on between batches: notes each
    rest instead of taking it (a test never waits on the clock)."""

    rests: list[float] = []

    def wait(self, timeout: float) -> bool:
        self.rests.append(timeout)
        return False


def test_the_command_rests_between_batches_so_a_running_serve_gets_the_writer(
    settings: Settings, inbox_of_all_kinds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a running serve is another process waiting for the one write lock; a prune
    that took it back at once after each batch would win every race against SQLite's busy
    handler and its deliveries would time out (503)."""
    monkeypatch.setattr(retention_service.threading, "Event", RecordedRests)
    RecordedRests.rests = []
    done = run_cli(["events", "prune", "--older-than", "30d"], cli_env(settings))
    assert done.exit_code == 0, done.output
    # A rest after every batch: the applied bodies', the ignored ones'.
    assert RecordedRests.rests == [retention_service.PAUSE_BETWEEN] * 2
    assert retention_service.PAUSE_BETWEEN > 0


def test_replaying_a_pruned_event_says_why_it_cannot_everywhere(
    client: TestClient,
    runtime: Runtime,
    settings: Settings,
    connected: MerchantCtx,
    inbox_of_all_kinds: dict[str, Any],
) -> None:
    retention.prune(runtime.engine, BEFORE)
    pruned = ids(inbox_of_all_kinds, "applied")[0]
    r = client.post(
        f"/api/v1/merchants/{connected.id}/stage/events/{pruned}/replay", headers=connected.auth
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_pruned", r.text
    cli = run_cli(
        ["events", "replay", "--merchant", connected.id, "--env", "stage", pruned],
        cli_env(settings),
    )
    assert cli.exit_code == 1 and "event_pruned" in cli.stderr, cli.output
    with TestClient(client.app, base_url="https://testserver") as web:
        sign_in(web, connected.token)
        page = f"/m/{connected.id}/stage/events/{pruned}"
        shown = web.get(page)
        assert shown.status_code == 200 and "retention period" in shown.text
        assert "Replay this event" not in shown.text
        replayed = web.post(f"{page}/replay", data={"csrf_token": csrf_of(web, page)})
        assert replayed.status_code == 409 and "nothing left to replay" in replayed.text


def test_serve_prunes_by_itself_and_not_when_retention_is_off(
    runtime: Runtime, inbox_of_all_kinds: dict[str, Any]
) -> None:
    made = inbox_of_all_kinds
    off = Runtime(runtime.settings.model_copy(update={"event_retention_days": 0}), runtime.engine)
    with TestClient(create_app(off, run_worker=False)) as c:
        assert c.get("/healthz").status_code == 200
        assert not hasattr(c.app.state, "prune_thread")  # type: ignore[attr-defined]
    assert all(bodies(runtime)[i][1] > 0 for i in prunable_ids(made))
    on = Runtime(runtime.settings.model_copy(update={"event_retention_days": 30}), runtime.engine)
    with TestClient(create_app(on, run_worker=False)):
        wait_for(
            lambda: all(bodies(runtime)[i][1] == 0 for i in prunable_ids(made)),
            what="serve's pruner to remove the old bodies",
        )
    assert bodies(runtime)[ids(made, "recent")[0]][1] > 0


# ---- outbound messages: the same retention, in the same kind of batches ---------------------


def message_ids(runtime: Runtime) -> list[str]:
    """Every outbound message, oldest first."""
    with runtime.engine.connect() as conn:
        query = select(outbound_messages.c.id).order_by(
            outbound_messages.c.created_at, outbound_messages.c.id
        )
        return list(conn.execute(query).scalars())


def set_deliveries(runtime: Runtime, message_id: str, state: str, *, one: bool = False) -> None:
    """Put the message's deliveries (only the first, with ``one``) in ``state``."""
    d = outbound_deliveries
    with db.write(runtime.engine) as conn:
        ids = conn.execute(
            select(d.c.id).where(d.c.message_id == message_id).order_by(d.c.id)
        ).scalars()
        chosen = list(ids)[:1] if one else list(ids)
        conn.execute(update(d).where(d.c.id.in_(chosen)).values(state=state))


def table_rows(runtime: Runtime) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(message ids, (message id, delivery state) per delivery, message id per attempt)."""
    with runtime.engine.connect() as conn:
        msgs = sorted(conn.execute(select(outbound_messages.c.id)).scalars())
        dels = sorted(
            (r[0], r[1])
            for r in conn.execute(
                select(outbound_deliveries.c.message_id, outbound_deliveries.c.state)
            )
        )
        atts = sorted(conn.execute(select(outbound_attempts.c.message_id)).scalars())
    return msgs, dels, atts


@pytest.fixture
def old_messages(runtime: Runtime, connected: MerchantCtx, clock: FakeClock) -> list[str]:
    """Eight messages 100 days old, one second apart (oldest first), and one recent one.

    The first was written before any destination existed (no delivery); the others each have
    two deliveries, one per destination, with an attempt each. All delivered, except the
    second message's first delivery, which is still retrying.
    """
    now = clock.freeze()
    clock.set(now - 100 * DAY)

    def change(n: int) -> None:
        snap = snapshot_of(
            "customer",
            sf.obj("customer", id=f"cus_prune{n:03d}"),
            event_id=f"evt_prune{n}",
            event_type="customer.updated",
            event_created=1_760_000_000,
        )
        with db.write(runtime.engine) as conn:
            objects.apply_snapshots(conn, connected.id, "stage", [snap])
        clock.advance(1)

    change(0)
    add_destination(runtime, connected.id, "https://a.example/")
    add_destination(runtime, connected.id, "https://b.example/")
    for n in range(1, 8):
        change(n)
    clock.set(now - DAY)
    change(8)
    clock.set(now)
    made = message_ids(runtime)
    assert len(made) == 9
    d = outbound_deliveries
    with db.write(runtime.engine) as conn:
        old = [r for r in conn.execute(select(d.c.id, d.c.message_id, d.c.destination_id))]
        conn.execute(update(d).where(d.c.message_id != made[8]).values(state="delivered"))
        conn.execute(
            insert(outbound_attempts),
            [
                {
                    "delivery_id": r.id,
                    "destination_id": r.destination_id,
                    "message_id": r.message_id,
                    "attempt": 1,
                    "at": now - 100 * DAY,
                    "duration": 0.01,
                }
                for r in old
                if r.message_id != made[8]
            ],
        )
    set_deliveries(runtime, made[1], "retrying", one=True)
    return made


def test_outbound_messages_go_in_batches_each_its_own_transaction(
    client: TestClient,
    runtime: Runtime,
    connected: MerchantCtx,
    old_messages: list[str],
    clock: FakeClock,
) -> None:
    made = old_messages
    before = table_rows(runtime)
    cut = clock() - 90 * DAY
    dry = retention.prune(runtime.engine, cut, dry_run=True)
    # All old ones but the retrying one; the dry run writes nothing.
    assert (dry.outbound_messages, dry.events) == (7, 0)
    assert table_rows(runtime) == before

    seen: list[int] = []
    between: list[int] = []

    def pause() -> bool:
        # Between two batches nothing holds the writer: a webhook commits at once (it would
        # wait for the lock, then answer 503, behind one long transaction), and so does our
        # own write: the sixth message's second delivery fails after all, before its batch.
        evt = sf.event("payment_intent.created", sf.payment_intent())
        between.append(post(client, connected.id, evt).status_code)
        if len(between) == 1:
            set_deliveries(runtime, made[5], "failed", one=True)
        return False

    done = retention.prune(
        runtime.engine,
        cut,
        batch_size=3,
        pause=pause,
        on_batch=lambda r: seen.append(r.outbound_messages),
    )
    # Three batches ([0 1 2] [3 4 5] [6 7]), three transactions, the totals after each.
    assert seen == [2, 4, 6]
    assert between == [200, 200, 200]
    assert (done.outbound_messages, done.finished) == (6, True)
    msgs, dels, atts = table_rows(runtime)
    kept = [made[1], made[5], made[8]]  # a delivery retrying, one failed, and the recent one
    assert msgs == sorted(kept)
    # Every delivery and attempt of a removed message went with it; the kept keep theirs.
    assert {m for m, _ in dels} == set(kept)
    assert sorted(s for m, s in dels if m == made[5]) == ["delivered", "failed"]
    assert sorted(s for m, s in dels if m == made[1]) == ["delivered", "retrying"]
    assert atts == sorted([made[1]] * 2 + [made[5]] * 2)
    assert retention.prune(runtime.engine, cut, batch_size=3).outbound_messages == 0


def test_outbound_pruning_stops_when_asked_and_the_next_run_goes_on(
    runtime: Runtime, old_messages: list[str], clock: FakeClock
) -> None:
    made = old_messages
    cut = clock() - 90 * DAY
    seen: list[int] = []
    first = retention.prune(
        runtime.engine,
        cut,
        batch_size=3,
        pause=lambda: True,
        on_batch=lambda r: seen.append(r.outbound_messages),
    )
    # One batch, then stop: the first and the third message are gone, the rest untouched.
    assert (seen, first.outbound_messages, first.finished) == ([2], 2, False)
    assert message_ids(runtime) == [m for m in made if m not in (made[0], made[2])]
    rest = retention.prune(runtime.engine, cut, batch_size=3)
    assert (rest.outbound_messages, rest.finished) == (5, True)
    assert message_ids(runtime) == [made[1], made[8]]


def test_a_delivery_replayed_while_its_batch_runs_keeps_its_message(
    db_kind: str, runtime: Runtime, old_messages: list[str], clock: FakeClock
) -> None:
    """PostgreSQL: another transaction turns a delivered delivery back to pending (as a replay
    does) and commits only after the batch has read it as delivered. The batch waits for that
    row, reads it again and keeps the message; its neighbours in the batch still go."""
    if db_kind != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing changes under a batch there")
    made = old_messages
    d = outbound_deliveries
    done: list[retention.PruneResult] = []
    with runtime.engine.connect() as replay:
        replay.execute(
            update(d).where(d.c.message_id == made[3]).values(state="pending")  # not committed
        )
        pid = replay.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        pruner = threading.Thread(
            target=lambda: done.append(retention.prune(runtime.engine, clock() - 90 * DAY))
        )
        pruner.start()

        def pruner_waits_for_the_replay() -> bool:
            with runtime.engine.connect() as conn:
                blocked = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE %(pid)s = ANY "
                    "(pg_blocking_pids(pid))",
                    {"pid": pid},
                ).scalar_one()
            return bool(blocked)

        wait_for(pruner_waits_for_the_replay, timeout=10, what="the batch to wait for the row")
        replay.commit()
    pruner.join(10)
    assert not pruner.is_alive() and done
    # One batch of 500: all eight old ones but the retrying one and the one replayed meanwhile.
    assert done[0].outbound_messages == 6
    assert message_ids(runtime) == [made[1], made[3], made[8]]
    assert {s for m, s in table_rows(runtime)[1] if m == made[3]} == {"pending"}


# -- Each batch is a range scan of ix_events_prunable, however big the table (0007, 0008) -----


def stored_event(
    merchant_id: str, env: str, n: int, state: str, received_at: float, scheduled: float
) -> dict[str, Any]:
    """An inbox row as the worker leaves it: received at ``received_at``, last scheduled (claimed,
    retried or replayed) at ``scheduled``."""
    return {
        "merchant_id": merchant_id,
        "env": env,
        "event_id": f"evt_{env}_{n:05d}",
        "type": "charge.succeeded",
        "created": int(received_at) - 2,
        "object_type": "charge",
        "object_id": f"ch_{n}",
        "received_at": received_at,
        "source": "webhook",
        "payload": json.dumps({"id": f"evt_{n}", "pad": "x" * (n % 7)}).encode(),
        "state": state,
        "attempts": 1,
        "next_attempt_at": scheduled,
    }


def store_events(runtime: Runtime, rows_: list[dict[str, Any]]) -> None:
    with db.write(runtime.engine) as conn:
        conn.execute(insert(events), rows_)


def bodies_by_key(runtime: Runtime) -> dict[tuple[str, str, str], tuple[str, int]]:
    with runtime.engine.connect() as conn:
        return {
            (r.merchant_id, r.env, r.event_id): (r.state, len(r.payload))
            for r in conn.execute(
                select(
                    events.c.merchant_id,
                    events.c.env,
                    events.c.event_id,
                    events.c.state,
                    events.c.payload,
                )
            )
        }


def candidate_plan(runtime: Runtime, after: tuple[float, int] | None, cut: float) -> str:
    """The query plan of one prune batch's candidate query, as the database reports it for the
    statement the batch runs: with bound parameters (SQLite plans ``a > ?1 OR a = ?2 AND ...``
    differently from the same with literals, where it can see that both are one value)."""
    query = retention._candidates_query("applied", cut, after, 500)
    with runtime.engine.connect() as conn:
        compiled = query.compile(conn)
        params = compiled.construct_params()
        if conn.dialect.name == "sqlite":
            positional = tuple(params[name] for name in compiled.positiontup or ())
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional)
            return "\n".join(r[-1] for r in plan)
        # A test table is tiny: a sequential or bitmap scan and a sort would win on cost there.
        # Forbid them to see whether the index serves the batch in its order (no sort).
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))


def test_a_prune_batch_is_an_index_range_scan_not_a_scan_and_sort_of_all_events(
    runtime: Runtime, clock: FakeClock
) -> None:
    now = clock.set(NOW)
    cut = retention.cutoff(90, now)
    shops = [make_merchant(runtime, f"Shop {i}").id for i in range(3)]
    store_events(
        runtime,
        [
            stored_event(shops[n % 3], "live", n, state, cut - DAY * (n % 200), cut - n)
            for n in range(600)
            for state in [("applied", "ignored", "pending")[n % 3]]
        ],
    )
    for analyzed in (False, True):
        if analyzed:  # with statistics, as a long-running database has them
            with runtime.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        for after in (None, (cut - 300, 10**6)):
            plan = candidate_plan(runtime, after, cut)
            assert "ix_events_prunable" in plan, plan
            # A range from the cursor (not from the start of every applied event) to the cut-off.
            if runtime.engine.dialect.name == "sqlite":
                bounds = "next_attempt_at>? AND next_attempt_at<?" if after else "next_attempt_at<?"
                search = f"SEARCH events USING INDEX ix_events_prunable (state=? AND {bounds})"
                assert search in plan, plan
                assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
            else:
                assert "Index Scan using ix_events_prunable" in plan and "Sort" not in plan, plan
                cond = next(line for line in plan.splitlines() if "Index Cond" in line)
                assert "next_attempt_at <" in cond and ("next_attempt_at >=" in cond) == bool(after)


def test_prune_covers_every_data_set_in_batches_and_keeps_the_rule(
    runtime: Runtime, clock: FakeClock
) -> None:
    now = clock.set(NOW)
    cut = retention.cutoff(90, now)
    shops = [make_merchant(runtime, f"Shop {i}").id for i in range(3)]
    data_sets = [(m, env) for m in shops for env in ("live", "stage")]
    made: list[dict[str, Any]] = []
    prunable: set[tuple[str, str, str]] = set()
    n = 0

    def add(m: str, env: str, state: str, received: float, scheduled: float, gone: bool) -> None:
        nonlocal n
        n += 1
        row = stored_event(m, env, n, state, received, scheduled)
        made.append(row)
        if gone:
            prunable.add((m, env, row["event_id"]))

    for i, (m, env) in enumerate(data_sets):
        for k in range(6):  # old: many share a scheduled time across data sets (keyset ties)
            add(m, env, "applied", cut - 30 * DAY, cut - DAY * (1 + k % 2), gone=True)
        for _ in range(3):
            add(m, env, "ignored", cut - 5 * DAY - i, cut - 5 * DAY - i, gone=True)
        # Kept: newer ones; the cut-off itself is not older than it.
        add(m, env, "applied", now - DAY, now - DAY, gone=False)
        add(m, env, "ignored", cut, cut, gone=False)
        # Kept: received long ago but scheduled again since (a replay restarts the clock).
        add(m, env, "applied", cut - 40 * DAY, cut + DAY, gone=False)
        # Kept: not applied, however old.
        for state in ("pending", "failed", "processing", "dead"):
            add(m, env, state, cut - 50 * DAY, cut - 50 * DAY, gone=False)
    store_events(runtime, made)
    before = bodies_by_key(runtime)
    assert len(prunable) == 54 and all(size > 0 for _, size in before.values())

    dry = retention.prune(runtime.engine, cut, dry_run=True)
    assert dry.events == len(prunable) and bodies_by_key(runtime) == before

    seen: list[int] = []
    done = retention.prune(
        runtime.engine, cut, batch_size=5, on_batch=lambda r: seen.append(r.events)
    )
    # 36 applied, then 18 ignored, five at a time: 8 + 4 batches, none larger than five.
    assert len(seen) == 12 and all(0 < b - a <= 5 for a, b in zip([0, *seen], seen, strict=False))
    expected_bytes = sum(before[key][1] for key in prunable)
    assert (done.events, done.bytes, done.finished) == (len(prunable), expected_bytes, True)
    after = bodies_by_key(runtime)
    for key, (state, size) in before.items():
        assert after[key] == ((state, 0) if key in prunable else (state, size)), key
    # The next run does not walk what this one pruned (it left ix_events_prunable): not one
    # batch, where a walk of every old applied event took 11 of them, a year of them an hour.
    walked: list[int] = []
    again = retention.prune(
        runtime.engine, cut, batch_size=5, on_batch=lambda r: walked.append(r.events)
    )
    assert (again.events, again.bytes, walked) == (0, 0, [])
