"""Issue 9, item 1: bounded input, isolated failures (without a server; the real ``serve`` test
is ``test_tenant_isolation.py``).

``parse_event`` refuses every value that would not fit its column, alone and with a reason.
Beyond validation, a row the database refuses fails alone: in the group-commit writer, in the
worker and in reconcile, every other event of the batch (another merchant's) still commits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from merchant_backend.errors import EventRejected
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox, limits, sqltext
from merchant_backend.store.inbox_writer import InboxUnavailable, InboxWriter
from merchant_backend.store.schema import events as events_table
from merchant_backend.stripe.webhook_event import parse_event
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx, add_data_set, make_merchant
from tests.fake_stripe import FakeStripe
from tests.stripe_helpers import aimed_at, reconcile
from tests.test_tenant_isolation import POISONED, poisoned_event
from tests.webhook_support import inbox_item, projection


def raw(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt).encode()  # any integer size, unlike orjson


# ---- parse_event ---------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "type_", "mutate"), POISONED, ids=[p[0] for p in POISONED])
def test_parse_event_refuses_a_value_that_does_not_fit_its_column(
    what: str, type_: str, mutate: Any
) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(raw(poisoned_event(type_, mutate)))
    assert caught.value.reason == "not_an_event"
    # The message names the field and what is wrong with it, never the value itself.
    message = str(caught.value)
    words = ("longer than", "control character", "64 bits", "Unix", "an integer")
    assert any(w in message for w in words)
    assert "\x00" not in message and len(message) < 120


def test_values_at_the_limits_of_their_columns_are_accepted() -> None:
    evt = sf.event("payment_intent.created", sf.payment_intent(), created=limits.LATEST_CREATED)
    evt["id"] = "evt_" + "e" * (limits.EVENT_ID - 4)
    obj = evt["data"]["object"]
    obj.update(
        id="pi_" + "p" * (limits.OBJECT_ID - 3),
        status="s" * limits.STATUS,
        amount=limits.INT64_MAX,
        created=limits.INT64_MIN,
        customer={"id": "cus_" + "c" * (limits.RELATED_ID - 4)},
    )
    event = parse_event(raw(evt))
    assert (event.event_id, event.object_id) == (evt["id"], obj["id"])
    early = sf.event("customer.updated", sf.obj("customer"), created=limits.EARLIEST_CREATED)
    assert parse_event(raw(early)).created == limits.EARLIEST_CREATED
    # A type we do not handle keeps no projection: its object's other fields are not ours.
    other = sf.event("charge.succeeded", {**sf.obj("charge"), "status": "s" * 500})
    assert parse_event(raw(other)).type == "charge.succeeded"


def test_the_limits_are_the_schemas() -> None:
    assert (limits.EVENT_ID, limits.EVENT_TYPE, limits.OBJECT_TYPE, limits.OBJECT_ID) == (
        255,
        120,
        40,
        255,
    )
    assert (limits.STATUS, limits.CURRENCY, limits.RELATED_ID) == (40, 3, 255)


# ---- the group-commit writer ---------------------------------------------------------------


def poisoned_item(m: MerchantCtx, **changes: Any) -> inbox.NewEvent:
    """An inbox row that slipped past validation (as if parse_event had a gap)."""
    return inbox_item(m, sf.event("payment_intent.created", sf.payment_intent()))._replace(
        **changes
    )


def in_inbox(runtime: Runtime, merchant_id: str) -> set[str]:
    with db.read(runtime.engine) as conn:
        return set(
            conn.execute(
                select(events_table.c.event_id).where(events_table.c.merchant_id == merchant_id)
            ).scalars()
        )


def run_batch(
    runtime: Runtime, items: list[inbox.NewEvent], commits: list[int]
) -> list[bool | Exception]:
    """Submit ``items`` together (one group commit) and return each one's outcome."""

    async def scenario() -> list[bool | BaseException]:
        writer = InboxWriter(runtime.engine)
        original = writer._commit

        def counting(batch: Any, rejections: Any) -> Any:
            commits.append(len(batch))
            return original(batch, rejections)

        writer._commit = counting  # type: ignore[method-assign]
        await writer.start()
        try:
            return await asyncio.gather(*(writer.submit(i) for i in items), return_exceptions=True)
        finally:
            await writer.stop()

    return asyncio.run(scenario())  # type: ignore[return-value]


def test_a_row_the_database_refuses_fails_alone_and_the_rest_of_the_batch_commits(
    runtime: Runtime, db_kind: str
) -> None:
    a, b = make_merchant(runtime, "A"), make_merchant(runtime, "B")
    add_data_set(runtime, a.id)
    add_data_set(runtime, b.id)
    good = [
        inbox_item(b, sf.event("payment_intent.created", sf.payment_intent())) for _ in range(30)
    ]
    refused_everywhere = poisoned_item(a, created=2**63)
    # SQLite stores these; PostgreSQL refuses them.
    refused_on_pg = [
        poisoned_item(a, object_type="o" * 41),
        poisoned_item(a, event_id="evt_\x00nul"),
        poisoned_item(a, object_id="pi_" + "x" * 300),
    ]
    items = [*good[:10], refused_everywhere, *good[10:20], *refused_on_pg, *good[20:]]
    items.insert(5, good[2])  # a redelivery in the same batch stays a duplicate
    commits: list[int] = []

    outcomes = run_batch(runtime, items, commits)

    assert commits == [len(items)]  # one group commit, which failed, then the savepoints
    by_id: dict[str, Any] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        by_id.setdefault(item.event_id, outcome)  # the first copy; the second is at index 5
    assert [by_id[g.event_id] for g in good] == [True] * len(good)
    assert outcomes[5] is False
    assert in_inbox(runtime, b.id) == {g.event_id for g in good}
    assert isinstance(by_id[refused_everywhere.event_id], InboxUnavailable)
    for item in refused_on_pg:
        outcome = by_id[item.event_id]
        if db_kind == "postgresql":
            assert isinstance(outcome, InboxUnavailable)
        else:
            assert outcome is True
    assert refused_everywhere.event_id not in in_inbox(runtime, a.id)


def test_when_the_database_is_down_the_batch_is_not_retried_event_by_event(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = make_merchant(runtime)
    add_data_set(runtime, m.id)
    items = [
        inbox_item(m, sf.event("payment_intent.created", sf.payment_intent())) for _ in range(5)
    ]
    tries: list[int] = []

    def down(cursor: Any, dialect: str, batch: Any, at: float) -> Any:
        tries.append(len(batch))
        raise OperationalError("INSERT INTO events", {}, Exception("server closed"))

    # The group commit's insert (on the driver's cursor, see db.raw_write).
    monkeypatch.setattr(inbox, "insert_new_dbapi", down)
    outcomes = run_batch(runtime, items, [])
    assert all(isinstance(o, InboxUnavailable) for o in outcomes)
    assert tries == [5]


def test_reconcile_stores_what_the_database_takes_and_counts_the_rest_rejected(
    runtime: Runtime,
) -> None:
    m = make_merchant(runtime)
    good = [
        inbox_item(m, sf.event("payment_intent.created", sf.payment_intent())) for _ in range(4)
    ]
    bad = poisoned_item(m, created=2**63)
    with db.write(runtime.engine) as conn:
        new, refused = inbox.insert_isolated(conn, [good[0], bad, *good[1:]], 1.0)
    assert new == {(m.id, "stage", g.event_id) for g in good}
    assert set(refused) == {(m.id, "stage", bad.event_id)}
    assert in_inbox(runtime, m.id) == {g.event_id for g in good}


def test_reconcile_skips_poisoned_events_and_keeps_going(
    runtime: Runtime, stage: MerchantCtx, fake: FakeStripe
) -> None:
    good = sf.event("payment_intent.created", sf.payment_intent(), created=1_790_000_100)
    # Of a type reconcile keeps, inside the window it asks for (its "created" is not poisoned).
    bad = [
        poisoned_event(t, mutate)
        for what, t, mutate in POISONED
        if t != "charge.succeeded" and not what.startswith("created")
    ]
    for evt in bad:
        evt["created"] = 1_790_000_050
    fake.events.extend([*bad, good])
    aimed = Runtime(aimed_at(runtime.settings, fake.url), engine=runtime.engine)
    summary = reconcile(aimed, stage.id, "stage", since=1_790_000_000)
    assert summary["new"] == 1
    # A type longer than its column is no type we handle: skipped like any other.
    assert (summary["rejected"], summary["skipped_types"]) == (len(bad) - 1, 1)
    assert in_inbox(runtime, stage.id) == {good["id"]}


# ---- the worker ----------------------------------------------------------------------------


def test_the_worker_fails_only_the_event_whose_object_the_database_refuses(
    runtime: Runtime, worker: Worker, db_kind: str
) -> None:
    a, b = make_merchant(runtime, "A"), make_merchant(runtime, "B")
    good = [
        inbox_item(b, sf.event("payment_intent.created", sf.payment_intent())) for _ in range(8)
    ]
    poisoned_pi = sf.payment_intent(amount=2**63, status="s" * 41)
    bad = inbox_item(a, sf.event("payment_intent.created", poisoned_pi))
    bad = bad._replace(payload=orjson.dumps(orjson.loads(bad.payload)))
    with db.write(runtime.engine) as conn:
        inbox.insert_new(conn, [*good[:4], bad, *good[4:]], 1.0)
    worker.drain()
    assert set(projection(runtime.engine, b.id)) == {
        orjson.loads(g.payload)["data"]["object"]["id"] for g in good
    }
    with db.read(runtime.engine) as conn:
        row = inbox.get(conn, a.id, "stage", bad.event_id)
    assert row is not None and row.state == "failed"
    assert projection(runtime.engine, a.id) == {}


def test_a_statement_run_on_the_drivers_cursor_fails_with_sqlalchemys_error(
    runtime: Runtime,
) -> None:
    """The worker's statements bypass Core (store/sqltext.py) but not its errors: the worker
    tells a refused row from a database that is down by SQLAlchemy's classes, and an error
    must not carry the parameters (event bodies) into a log, as with Core (the engine's
    hide_parameters)."""
    marks = sqltext.marks(runtime.engine.dialect.name, 3)
    sql = f"INSERT INTO outbound_sequences (merchant_id, env, last) VALUES {marks}"  # noqa: S608
    with pytest.raises(IntegrityError) as caught, db.write(runtime.engine) as conn:
        sqltext.run(conn, sql, ("no-such-merchant", "stage", 1))
    assert isinstance(caught.value.orig, runtime.engine.dialect.loaded_dbapi.IntegrityError)
    assert caught.value.hide_parameters
    assert "[parameters:" not in str(caught.value)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=50))
def test_the_hot_paths_quick_check_agrees_with_the_reasoned_one(value: str, limit: int) -> None:
    """``text_fits`` (isprintable before the regex) takes exactly what ``text_problem`` takes."""
    assert limits.text_fits(value, limit) == (limits.text_problem(value, limit) is None)
