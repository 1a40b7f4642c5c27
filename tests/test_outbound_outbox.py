"""The transactional outbox: one message per actual change of a projection, written in the
same transaction, in a per-(merchant, env) sequence. Runs on SQLite and PostgreSQL (``--db``).

The oracle is the read API (what a consumer could fetch instead), not the outbox code.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from merchant_backend.runtime import Runtime
from merchant_backend.services.payments import sync_payment_intent
from merchant_backend.store import db, inbox, objects, outbox
from merchant_backend.store import destinations as destination_store
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.destinations import OBJECT_TYPES
from merchant_backend.store.schema import (
    events,
    outbound_deliveries,
    outbound_messages,
    outbound_sequences,
)
from merchant_backend.sync.handlers import snapshot_of
from merchant_backend.sync.worker import Worker
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests import stripe_factory as sf
from tests.conftest import FakeClock
from tests.outbound_support import add_destination, messages, newest_per_object
from tests.test_sync_properties import deliver, deliveries
from tests.webhook_support import connected_merchant, post_ok

# Every lifecycle once, for one merchant: together they use all 15 handled event types.
STORM = [evt for name in sorted(sf.LIFECYCLES) for evt in sf.lifecycle(name).events]
SEGMENTS = {
    "payment_intent": "payment-intents",
    "customer": "customers",
    "payment_method": "payment-methods",
    "dispute": "disputes",
}


def test_the_storm_uses_every_handled_event_type() -> None:
    assert {e["type"] for e in STORM} == set(HANDLED_EVENTS)
    assert len(HANDLED_EVENTS) == 15


def read_api_objects(client: TestClient, m: Any) -> dict[str, Any]:
    """Every object as the read API shows it, by id."""
    out: dict[str, Any] = {}
    for segment in SEGMENTS.values():
        after = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            r = client.get(
                f"/api/v1/merchants/{m.id}/stage/{segment}", headers=m.auth, params=params
            )
            assert r.status_code == 200, r.text
            body = r.json()
            out.update({item["id"]: item["object"] for item in body["data"]})
            if not body["has_more"]:
                break
            after = body["data"][-1]["id"]
    r = client.get(f"/api/v1/merchants/{m.id}/stage/account", headers=m.auth)
    if r.status_code == 200:
        out[r.json()["id"]] = r.json()["object"]
    return out


def check_messages_match_read_api(client: TestClient, runtime: Runtime, m: Any) -> list[Any]:
    msgs = messages(runtime.engine, m.id)
    # The sequence grows by one per message, without gaps or repeats.
    assert [x["sequence"] for x in msgs] == list(range(1, len(msgs) + 1))
    assert {x["type"] for x in msgs} <= {f"{t}.changed" for t in OBJECT_TYPES}
    # Per object, the newest message carries exactly what the read API shows.
    assert newest_per_object(msgs) == read_api_objects(client, m)
    # Each message names the status the one before it (of the same object) left.
    last_status: dict[str, Any] = {}
    for x in msgs:
        obj = x["data"]["object"]
        assert x["data"]["previous_status"] == last_status.get(obj["id"]), x
        last_status[obj["id"]] = obj.get("status")
        cause = x["data"]["cause"]
        assert cause is not None and cause["event_id"].startswith("evt_")
    return msgs


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_storms_in_any_order_end_with_messages_that_match_the_read_api(
    client: TestClient, runtime: Runtime, worker: Worker, data: st.DataObject
) -> None:
    subset, plan = data.draw(deliveries(STORM), label="delivery")
    m = connected_merchant(runtime)
    deliver(client, worker, m.id, subset, plan)
    msgs = check_messages_match_read_api(client, runtime, m)
    # Applying the same events again (a replay: same snapshots) changes nothing, sends nothing.
    for evt in subset:
        r = client.post(f"/api/v1/merchants/{m.id}/stage/events/{evt['id']}/replay", headers=m.auth)
        assert r.status_code in (200, 202), r.text
    worker.drain()
    assert messages(runtime.engine, m.id) == msgs


def test_one_message_per_change_in_stripe_order(
    client: TestClient, runtime: Runtime, worker: Worker
) -> None:
    """In order and applied one by one, every event is a change: one message each, and an
    older snapshot delivered late afterwards sends nothing."""
    m = connected_merchant(runtime)
    lc = sf.lifecycle("pi_fails_then_succeeds")
    for evt in lc.events:
        post_ok(client, m.id, evt)
        worker.drain()
    msgs = check_messages_match_read_api(client, runtime, m)
    assert [x["data"]["cause"]["event_id"] for x in msgs] == [e["id"] for e in lc.events]
    assert msgs[-1]["data"]["object"]["status"] == "succeeded"
    assert msgs[-1]["merchant_id"] == m.id and msgs[-1]["env"] == "stage"
    assert msgs[-1]["data"]["cause"] == {
        "event_id": lc.events[-1]["id"],
        "event_type": lc.events[-1]["type"],
        "event_created": lc.events[-1]["created"],
    }
    # The first event again, as a new event id (a late, older snapshot): no message.
    late = dict(lc.events[0], id="evt_late_" + lc.events[0]["id"][4:])
    post_ok(client, m.id, late)
    worker.drain()
    assert len(messages(runtime.engine, m.id)) == len(msgs)


def _counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(outbound_messages)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbound_deliveries)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbound_sequences)).scalar_one(),
        )


def test_a_rolled_back_apply_writes_no_message(runtime: Runtime) -> None:
    m = connected_merchant(runtime)
    add_destination(runtime, m.id, "https://hooks.example/x")
    snap = snapshot_of(
        "payment_intent",
        sf.payment_intent(),
        event_id="evt_x",
        event_type="payment_intent.created",
        event_created=1_760_000_000,
    )
    seen = outbox.COMMITTED.generation
    with pytest.raises(RuntimeError), db.write(runtime.engine) as conn:
        changes = objects.apply_snapshots(conn, m.id, "stage", [snap])
        assert len(changes) == 1  # written, then rolled back
        raise RuntimeError("the transaction fails after the projection was written")
    assert _counts(runtime) == (0, 0, 0)
    assert outbox.COMMITTED.generation == seen  # nobody was woken for it
    with db.write(runtime.engine) as conn:
        objects.apply_snapshots(conn, m.id, "stage", [snap])
    assert _counts(runtime) == (1, 1, 1)
    assert outbox.COMMITTED.generation > seen


def test_the_dispatcher_is_woken_only_for_a_delivery_not_for_every_message(
    runtime: Runtime,
) -> None:
    m = connected_merchant(runtime)

    def apply_one() -> None:
        snap = snapshot_of(
            "payment_intent",
            sf.payment_intent(),
            event_id=sf.new_id("evt"),
            event_type="payment_intent.created",
            event_created=1_760_000_000,
        )
        with db.write(runtime.engine) as conn:
            objects.apply_snapshots(conn, m.id, "stage", [snap])

    feed, due = outbox.COMMITTED.generation, outbox.DUE.generation
    apply_one()  # no destination: a message for the change feed, nothing to deliver
    assert outbox.COMMITTED.generation > feed
    assert outbox.DUE.generation == due
    add_destination(runtime, m.id, "https://hooks.example/x")
    apply_one()
    assert outbox.DUE.generation > due


def test_a_worker_batch_that_fails_sends_nothing(
    client: TestClient, runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = connected_merchant(runtime)
    for evt in sf.lifecycle("pi_succeeds").events:
        post_ok(client, m.id, evt)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(inbox, "mark_applied", broken)
    worker.run_once()
    assert _counts(runtime)[0] == 0
    monkeypatch.undo()
    # Retried later (the backoff moved on), the same events send their messages once.
    with db.write(runtime.engine) as conn:
        conn.execute(events.update().values(next_attempt_at=0))
    worker.drain()
    assert len(messages(runtime.engine, m.id)) > 0
    check_messages_match_read_api(client, runtime, m)


def test_the_payment_path_writes_its_message_too(
    client: TestClient, runtime: Runtime, worker: Worker, clock: FakeClock
) -> None:
    # Both answers are written within one second, as the ordering rule assumes of a repeat.
    clock.freeze()
    m = connected_merchant(runtime)
    pi = sf.payment_intent(status="requires_capture")
    sync_payment_intent(runtime, m.id, "stage", pi)
    (msg,) = messages(runtime.engine, m.id)
    assert msg["type"] == "payment_intent.changed"
    assert msg["data"] == {"object": pi, "previous_status": None, "cause": None}
    # Writing the same answer again changes nothing.
    sync_payment_intent(runtime, m.id, "stage", pi)
    assert len(messages(runtime.engine, m.id)) == 1


def test_deliveries_go_to_the_destinations_that_want_them(runtime: Runtime) -> None:
    m = connected_merchant(runtime)
    other = connected_merchant(runtime, "Other")
    own, _ = add_destination(runtime, m.id, "https://a.example/")
    disputes_only, _ = add_destination(
        runtime, m.id, "https://b.example/", object_types=("dispute",)
    )
    everyone, _ = add_destination(runtime, None, "https://operator.example/")
    live, _ = add_destination(runtime, m.id, "https://c.example/", env="live")
    foreign, _ = add_destination(runtime, other.id, "https://d.example/")

    def snap(obj_type: str, obj: dict[str, Any]) -> Any:
        return snapshot_of(
            obj_type, obj, event_id="evt_1", event_type=None, event_created=1_760_000_000
        )

    with db.write(runtime.engine) as conn:
        objects.apply_snapshots(
            conn,
            m.id,
            "stage",
            [snap("payment_intent", sf.payment_intent()), snap("customer", sf.obj("customer"))],
        )
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(outbound_deliveries.c.destination_id)).all()
    got: dict[str, int] = {}
    for (dest_id,) in rows:
        got[dest_id] = got.get(dest_id, 0) + 1
    assert got == {own.id: 2, everyone.id: 2}
    assert disputes_only.id not in got and live.id not in got and foreign.id not in got


def test_a_destination_changed_by_another_process_counts_from_its_commit(
    client: TestClient, runtime: Runtime, worker: Worker, database_url: str
) -> None:
    """The worker keeps no list of destinations between batches: one added, disabled or
    removed through another engine (as the CLI or a second serve would) is taken into account
    by the very next batch, with no signal to this process."""
    m = connected_merchant(runtime)

    def apply_one() -> set[str]:
        """Apply one new payment intent; the destinations its message is delivered to."""
        post_ok(client, m.id, sf.event("payment_intent.created", sf.payment_intent()))
        assert worker.drain() == 1
        with runtime.engine.connect() as conn:
            newest = conn.execute(select(func.max(outbound_messages.c.sequence))).scalar_one()
            rows = conn.execute(
                select(outbound_deliveries.c.destination_id).where(
                    outbound_deliveries.c.sequence == newest
                )
            )
            return {r[0] for r in rows}

    assert apply_one() == set()
    elsewhere = Runtime(runtime.settings, engine=create_db_engine(database_url))
    try:
        added, _ = add_destination(elsewhere, m.id, "https://a.example/")
        assert apply_one() == {added.id}
        with db.write(elsewhere.engine) as conn:
            destination_store.update_(conn, added, enabled=False)
        assert apply_one() == set()
        with db.write(elsewhere.engine) as conn:
            destination_store.update_(conn, added, enabled=True)
        assert apply_one() == {added.id}
        with db.write(elsewhere.engine) as conn:
            destination_store.delete_(conn, added)
        assert apply_one() == set()  # applied: no delivery to a destination that is gone
    finally:
        elsewhere.engine.dispose()
    with runtime.engine.connect() as conn:
        states = conn.execute(select(events.c.state).where(events.c.merchant_id == m.id)).all()
    assert {s for (s,) in states} == {"applied"}


def _insert_events(runtime: Runtime, items: list[Any]) -> None:
    with db.write(runtime.engine) as conn:
        inbox.insert_new(conn, items, 1_760_000_000.0)


def test_one_batch_over_several_merchants_keeps_each_ones_objects_feed_and_destinations(
    client: TestClient, runtime: Runtime, worker: Worker
) -> None:
    """The worker writes a batch's projections and messages for all its merchants at once: the
    same Stripe ids under different merchants stay apart, each merchant's feed is its own
    gapless sequence, and each destination gets exactly what it subscribed to."""
    shops = [connected_merchant(runtime, f"Shop {n}") for n in range(3)]
    first, second, third = shops
    own_first, _ = add_destination(runtime, first.id, "https://first.example/")
    own_second, _ = add_destination(runtime, second.id, "https://second.example/")
    everyone, _ = add_destination(runtime, None, "https://operator.example/")
    first_live, _ = add_destination(runtime, first.id, "https://live.example/", env="live")
    # The whole storm for each merchant (the very same event and object ids), interleaved, in
    # one inbox write: the worker takes it as one batch.
    items = [inbox_item_of(m, evt) for evt in STORM for m in shops]
    assert len(items) <= runtime.settings.worker_batch_size
    _insert_events(runtime, items)
    assert worker.run_once() == len(items)
    per_shop = [check_messages_match_read_api(client, runtime, m) for m in shops]
    assert len({len(msgs) for msgs in per_shop}) == 1 and per_shop[0]
    for m, msgs in zip(shops, per_shop, strict=True):
        assert {x["merchant_id"] for x in msgs} == {m.id}
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(outbound_deliveries.c.destination_id, outbound_messages.c.merchant_id).join(
                outbound_messages, outbound_messages.c.id == outbound_deliveries.c.message_id
            )
        ).all()
    got: dict[str, dict[str, int]] = {}
    for dest_id, merchant_id in rows:
        counts = got.setdefault(dest_id, {})
        counts[merchant_id] = counts.get(merchant_id, 0) + 1
    n = len(per_shop[0])
    assert got == {
        own_first.id: {first.id: n},
        own_second.id: {second.id: n},
        everyone.id: {first.id: n, second.id: n, third.id: n},
    }
    assert first_live.id not in got  # every event was a stage event


def inbox_item_of(m: Any, evt: dict[str, Any]) -> Any:
    """``evt`` as the webhook endpoint would store it for ``m``'s stage data set."""
    import orjson

    from merchant_backend.stripe.webhook_event import parse_event

    raw = orjson.dumps(evt)
    parsed = parse_event(raw)
    return inbox.NewEvent.of(parsed, m.id, "stage", raw, "webhook")


def test_a_batch_runs_as_many_statements_for_many_merchants_as_for_one(
    runtime: Runtime, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying a batch (projections, history, messages, deliveries, marks) takes a fixed
    number of statements: spread over many merchants it once took five per merchant, most of a
    batch's CPU. (Claiming it takes one range per lane, by design: see test_worker_fairness.)"""
    from merchant_backend.store import sqltext
    from merchant_backend.sync import worker as worker_module

    counted: list[str] = []
    applying = False
    run, apply_batch = sqltext.run, worker_module.apply_batch

    def counting(conn: Any, sql: str, params: Any) -> Any:
        if applying:
            counted.append(sql)
        return run(conn, sql, params)

    def counted_apply(*args: Any) -> Any:
        nonlocal applying
        applying = True
        try:
            return apply_batch(*args)
        finally:
            applying = False

    monkeypatch.setattr(sqltext, "run", counting)
    monkeypatch.setattr(worker_module, "apply_batch", counted_apply)

    def statements_for(shops: list[Any]) -> int:
        for m in shops:
            add_destination(runtime, m.id, f"https://{m.id.lower()}.example/")
        items = [
            inbox_item_of(m, sf.event("payment_intent.created", sf.payment_intent()))
            for m in shops
            for _ in range(2)
        ]
        _insert_events(runtime, items)
        counted.clear()
        assert worker.run_once() == len(items)
        return len(counted)

    one = statements_for([connected_merchant(runtime, "Alone")])
    many = statements_for([connected_merchant(runtime, f"Shop {n}") for n in range(8)])
    assert one > 0
    assert many == one
