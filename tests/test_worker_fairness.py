"""Fair between merchants (issue 11, item 2): the worker claims due events round robin across
lanes (merchant, env, source), oldest first within each, so one merchant's backlog delays
another merchant's new event by at most one batch, and a reconcile run's fetched events never
starve the same data set's live deliveries. On SQLite and PostgreSQL (there also with workers
claiming side by side)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox
from merchant_backend.store.inbox import ClaimedEvent, NewEvent, round_robin
from merchant_backend.store.schema import events
from merchant_backend.sync.worker import Worker, _last_lane
from tests.conftest import MerchantCtx, make_merchant

BATCH = 500
T0 = 1_700_000_000.0  # in the past: due now


def _item(m: str, n: int, *, env: str = "stage", source: str = "webhook") -> NewEvent:
    return NewEvent(
        merchant_id=m,
        env=env,
        event_id=f"evt_{source[:3]}{env}{n:07d}",
        type="customer.updated",
        created=int(T0) + n,
        object_type="customer",
        object_id=f"cus_{n}",
        payload=b"{}",  # claiming never reads it
        source=source,
        handled=True,
    )


def _queue(engine: Engine, items: list[NewEvent], received_at: float) -> None:
    for i in range(0, len(items), 2000):
        with db.write(engine) as conn:
            inbox.insert_new(conn, items[i : i + 2000], received_at)


def _claim(engine: Engine, worker_id: str = "w", **kw: Any) -> list[ClaimedEvent]:
    with db.write(engine) as conn:
        return inbox.claim(
            conn, worker_id, now=time.time(), lease_seconds=60, limit=kw.pop("limit", BATCH), **kw
        )


@pytest.fixture
def two(runtime: Runtime) -> tuple[MerchantCtx, MerchantCtx]:
    return make_merchant(runtime, "A Storm"), make_merchant(runtime, "B Quiet")


def test_a_new_event_of_b_is_claimed_in_the_next_batch_behind_20000_of_a(
    runtime: Runtime, two: tuple[MerchantCtx, MerchantCtx]
) -> None:
    a, b = two
    _queue(runtime.engine, [_item(a.id, n) for n in range(20_000)], T0)
    _queue(runtime.engine, [_item(b.id, 0)], T0 + 1)
    batch = _claim(runtime.engine)
    assert b.id in {c.merchant_id for c in batch}
    # Taking turns: B's one event comes with A's oldest (lanes in key order), not behind them.
    assert {c.merchant_id for c in batch[:2]} == {a.id, b.id}
    ours = [c.event_id for c in batch if c.merchant_id == a.id]
    assert ours == [_item(a.id, n).event_id for n in range(len(ours))]  # A's oldest first
    assert len(batch) <= BATCH


def test_live_deliveries_are_not_starved_by_the_same_data_sets_reconcile(
    runtime: Runtime, merchant: MerchantCtx
) -> None:
    fetched = [_item(merchant.id, n, source="reconcile") for n in range(5_000)]
    _queue(runtime.engine, fetched, T0)
    _queue(runtime.engine, [_item(merchant.id, 0, source="webhook")], T0 + 1)
    batch = _claim(runtime.engine)
    assert ("webhook", 0) in {(c.source, c.created - int(T0)) for c in batch}
    assert {c.source for c in batch} == {"webhook", "reconcile"}


def test_environments_take_turns_too(runtime: Runtime, merchant: MerchantCtx) -> None:
    _queue(runtime.engine, [_item(merchant.id, n, env="live") for n in range(1_000)], T0)
    _queue(runtime.engine, [_item(merchant.id, 0, env="stage")], T0 + 1)
    batch = _claim(runtime.engine, limit=10)
    assert "stage" in {c.env for c in batch}


def test_with_more_lanes_than_a_batch_holds_the_next_batch_goes_on_from_the_last_lane(
    runtime: Runtime,
) -> None:
    ms = sorted(make_merchant(runtime, f"M{i}").id for i in range(3))
    _queue(runtime.engine, [_item(m, n) for m in ms for n in range(2)], T0)
    first = _claim(runtime.engine, limit=2)
    assert [c.merchant_id for c in first] == ms[:2]
    last = (first[-1].merchant_id, first[-1].env, first[-1].source)
    second = _claim(runtime.engine, limit=2, after=last)
    assert [c.merchant_id for c in second] == [ms[2], ms[0]]


def test_the_worker_serves_every_lane_in_turn(runtime: Runtime) -> None:
    """Through ``Worker.run_once``: with batches of 2 and 3 lanes, each lane is served once in
    every 3 lanes' worth of turns, never twice before another once."""
    ms = sorted(make_merchant(runtime, f"M{i}").id for i in range(3))
    _queue(runtime.engine, [_item(m, n) for m in ms for n in range(4)], T0)
    s = runtime.settings.model_copy(update={"worker_batch_size": 2})
    worker = Worker(runtime.engine, s, worker_id="turns")
    seen: set[int] = set()
    turns: list[str] = []
    for _ in range(6):
        # The payloads are not Stripe events: they fail (and back off), which is fine here.
        assert worker.run_once() == 2
        with db.read(runtime.engine) as conn:
            rows = conn.execute(
                select(events.c.id, events.c.merchant_id).where(events.c.state != "pending")
            ).all()
        turns += sorted(r.merchant_id for r in rows if r.id not in seen)
        seen |= {r.id for r in rows}
    assert turns[:6] == [ms[0], ms[1], ms[0], ms[2], ms[1], ms[2]]
    assert sorted(turns) == sorted(ms * 4)


def test_round_robin_is_first_of_each_then_second_of_each() -> None:
    assert round_robin([[1, 2, 3], [10], [20, 21]], 10) == [1, 10, 20, 2, 21, 3]
    assert round_robin([[1, 2, 3], [10], [20, 21]], 4) == [1, 10, 20, 2]
    assert round_robin([], 5) == []


def test_workers_side_by_side_take_different_events_and_each_serves_b(
    db_kind: str, runtime: Runtime, two: tuple[MerchantCtx, MerchantCtx]
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SQLite has one writer at a time: claims cannot overlap there")
    a, b = two
    _queue(runtime.engine, [_item(a.id, n) for n in range(3_000)], T0)
    _queue(runtime.engine, [_item(b.id, 0)], T0 + 1)
    with runtime.engine.connect() as one, one.begin():
        # Worker 1 holds its claim open (locked, not committed) while worker 2 claims.
        first = inbox.claim(one, "w1", now=time.time(), lease_seconds=60, limit=BATCH)
        _queue(runtime.engine, [_item(b.id, 1)], T0 + 2)
        second = _claim(runtime.engine, "w2")
    assert {c.id for c in first}.isdisjoint({c.id for c in second})
    assert (b.id, 0) in {(c.merchant_id, c.created - int(T0)) for c in first}
    # B's next event is taken in worker 2's batch, beside A's events worker 1 did not lock.
    assert (b.id, 1) in {(c.merchant_id, c.created - int(T0)) for c in second}
    assert len([c for c in second if c.merchant_id == a.id]) > 0


# ---- property: whatever the backlogs, every event is claimed once, in turn, oldest first ----

lane_sizes = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4)


@pytest.fixture
def fresh(runtime: Runtime) -> Iterator[tuple[Runtime, list[str]]]:
    ms = sorted(make_merchant(runtime, f"P{i}").id for i in range(4))
    yield runtime, ms


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sizes=lane_sizes, limit=st.integers(min_value=1, max_value=7), data=st.data())
def test_claims_take_turns_oldest_first_and_cover_every_event_once(
    fresh: tuple[Runtime, list[str]], sizes: list[int], limit: int, data: st.DataObject
) -> None:
    runtime, ms = fresh
    with db.write(runtime.engine) as conn:
        conn.execute(delete(events))
    lanes = [(ms[i], "stage", "webhook") for i in range(len(sizes))]
    rows = []
    for (m, _env, _src), size in zip(lanes, sizes, strict=True):
        order = data.draw(st.permutations(range(size)))  # arrival order differs from ids
        rows += [_item(m, n).row(T0 + rank) for rank, n in enumerate(order)]
    if rows:
        with db.write(runtime.engine) as conn:
            conn.execute(events.insert(), rows)
    arrival = {
        m: [_item(m, n).event_id for n in data_order]
        for m, data_order in _arrivals(runtime, ms).items()
    }
    claimed: list[str] = []
    after: inbox.Lane | None = None
    left = {m: list(ids) for m, ids in arrival.items()}
    while True:
        batch = _claim(runtime.engine, limit=limit, after=after)
        if not batch:
            break
        assert len(batch) <= limit
        waiting = [m for m in left if left[m]]
        if len(waiting) <= limit:
            assert {c.merchant_id for c in batch} == set(waiting)  # every lane has its turn
        taken: dict[str, list[str]] = {}
        for c in batch:
            taken.setdefault(c.merchant_id, []).append(c.event_id)
        for m, ids in taken.items():
            assert ids == left[m][: len(ids)]  # oldest first within the lane
            left[m] = left[m][len(ids) :]
        # No lane got more than one turn ahead of another in the batch.
        counts = [len(v) for v in taken.values()]
        assert max(counts) - min(counts) <= math.ceil(limit / len(waiting))
        claimed += [c.event_id for c in batch]
        after = _last_lane(batch)  # as the worker goes on
        with db.write(runtime.engine) as conn:
            inbox.mark_applied(conn, [c.id for c in batch], "w", time.time())
    assert sorted(claimed) == sorted(i for ids in arrival.values() for i in ids)


def _arrivals(runtime: Runtime, ms: list[str]) -> dict[str, list[int]]:
    with db.read(runtime.engine) as conn:
        rows = conn.execute(events.select().order_by(events.c.received_at, events.c.id)).all()
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r.merchant_id, []).append(r.created - int(T0))
    return out
