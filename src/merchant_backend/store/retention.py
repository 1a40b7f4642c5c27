"""Retention: the raw bodies of applied and ignored events are dropped after a while.

Every event's exact bytes are kept in the inbox until it is applied; after that nobody reads
them again but the event page, and at a busy merchant's volume they grow the database by
gigabytes a week. So, once an event is older than the retention period
(``MERCHANT_BACKEND_EVENT_RETENTION_DAYS``, 90 by default; Stripe itself keeps events 30 days):

- its **payload** (the body) is replaced by an empty one: that is all that is removed;
- only events in state ``applied`` or ``ignored`` are touched; ``pending``, ``processing``,
  ``failed`` and ``dead`` ones keep their bodies whatever their age (they may still be applied
  or replayed);
- its **row stays**: id, type, ``created``, object, state, attempts, times. So a late duplicate
  from Stripe is still recognised (200 ``duplicate``, nothing changes), the events list still
  shows it, and the projections and the per-object history (which never depended on the
  body) are untouched;
- such an event shows ``"pruned": true`` and no ``event`` body, and cannot be replayed (there
  is nothing to apply; after 90 days Stripe no longer has it either).

"Older" means received before the cut-off and not scheduled for processing since (a replay
or a retry restarts the clock). Pruning walks the candidates in small batches, each its own
short transaction, in the order of the ``ix_events_prunable`` index (a partial index of applied
and ignored events that still have their body, by ``(state, next_attempt_at)``, migrations 0007
and 0008): each batch is a range scan of that index from the previous batch's last event, its
cost the same however many events the table holds, so it never holds the database for long and
webhooks keep being committed between batches; and a pruned event leaves the index, so the
next run looks at none of what this one pruned. Delivered outbound messages older than the same
cut-off go next, in the same kind of batches with the same pause (``store.outbox.prune_batch``):
one tenant's months of notifications never hold the writer for long either.

The space is reused by new events at once. The files do not shrink by themselves: on SQLite run
``VACUUM`` (``sqlite3 merchant-backend.db 'VACUUM'``, with the service stopped: it rewrites the
file) and on PostgreSQL autovacuum makes the space reusable (``VACUUM FULL`` returns it to the
operating system, under an exclusive lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from merchant_backend import clock, logs
from merchant_backend.store import db, outbox
from merchant_backend.store.schema import DONE_SQL, DONE_STATES, HAS_BODY_SQL, events

log = logs.get("merchant_backend.retention")

PRUNABLE_STATES = DONE_STATES
# Between two batches, serve's pruner and the CLI alike rest this long: on SQLite the other
# writers (serve's inbox writer, or a whole other serve process waiting in SQLite's busy
# handler, which sleeps 1, 2, 5, 10 … ms between tries) would otherwise lose every race to a
# prune that takes the lock back at once, and past the busy timeout deliveries answer 503.
PAUSE_BETWEEN = 0.05  # seconds
PRUNED = b""
DAY = 86400.0


def is_pruned(payload: bytes | None) -> bool:
    """An event body that retention removed (a real body is never empty)."""
    return payload is not None and len(payload) == 0


@dataclass
class PruneResult:
    before: float
    dry_run: bool
    events: int = 0  # bodies removed (or that would be)
    bytes: int = 0  # their size
    outbound_messages: int = 0  # delivered outbound messages removed (issue 10)
    finished: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "before": int(self.before),
            "dry_run": self.dry_run,
            "events": self.events,
            "bytes": self.bytes,
            "outbound_messages": self.outbound_messages,
            "finished": self.finished,
        }


def cutoff(days: float, at: float) -> float:
    return at - days * DAY


def _old(before: float) -> Any:
    return and_(events.c.next_attempt_at < before, events.c.received_at < before)


def _prunable() -> Any:
    # ix_events_prunable's predicate, word for word and literal (SQLite uses a partial index
    # only for a query that repeats it; PostgreSQL cannot prove it from bound parameters).
    return and_(text(f"events.{DONE_SQL}"), text(HAS_BODY_SQL))


def count_prunable(conn: Connection, before: float) -> tuple[int, int]:
    """(events, bytes) whose bodies a prune with this cut-off would remove."""
    size = func.length(events.c.payload)
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(size), 0)).where(_prunable(), _old(before))
    ).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class _Candidate:
    id: int
    next_attempt_at: float
    size: int


def _candidates_query(
    state: str, before: float, after: tuple[float, int] | None, limit: int
) -> Select[Any]:
    """The next ``limit`` old events of ``state`` past the keyset cursor ``after``.

    A range scan of ix_events_prunable from the cursor: the WHERE repeats the partial index's
    predicate word for word (SQLite uses a partial index only then), and the cursor is a range
    on ``next_attempt_at`` (``>= t``, then ``id`` breaks the tie) that the index can seek to,
    so a batch costs the same however many events the table or earlier batches hold.
    """
    query = select(events.c.id, events.c.next_attempt_at, func.length(events.c.payload)).where(
        _prunable(), events.c.state == state, _old(before)
    )
    if after is not None:
        t, last_id = after
        query = query.where(
            events.c.next_attempt_at >= t,
            or_(events.c.next_attempt_at > t, events.c.id > last_id),
        )
    return query.order_by(events.c.next_attempt_at, events.c.id).limit(limit)


def _candidates(
    conn: Connection, state: str, before: float, after: tuple[float, int] | None, limit: int
) -> list[_Candidate]:
    """The next ``limit`` old events of ``state`` past the keyset cursor ``after``."""
    rows = conn.execute(_candidates_query(state, before, after, limit)).all()
    return [_Candidate(r[0], r[1], int(r[2] or 0)) for r in rows]


def _clear(conn: Connection, ids: list[int]) -> int:
    """Remove the bodies; the state is checked again (a replay may have come in between)."""
    where = and_(events.c.id.in_(ids), events.c.state.in_(PRUNABLE_STATES))
    if conn.dialect.name != "sqlite":
        # PostgreSQL writes new, small row versions; (auto)vacuum makes the old ones' space
        # reusable by any new row.
        return int(conn.execute(update(events).where(where).values(payload=PRUNED)).rowcount or 0)
    # SQLite never rebalances a page when an UPDATE shrinks its rows, and new events (higher
    # rowids) never land on those pages: the freed bytes would wait for a VACUUM. Deleting the
    # rows does rebalance (emptied pages go to the free list, reused by new events at once);
    # putting them back, same id and all, without the body, takes little room. One transaction:
    # no reader ever sees them missing.
    kept = [c for c in events.c if c.name != "payload"]
    rows = [dict(r._mapping) for r in conn.execute(select(*kept).where(where))]
    if not rows:
        return 0
    conn.execute(delete(events).where(events.c.id.in_([r["id"] for r in rows])))
    conn.execute(insert(events), [{**r, "payload": PRUNED} for r in rows])
    return len(rows)


Progress = Callable[[PruneResult], None]


def _between(
    result: PruneResult, pause: Callable[[], bool] | None, on_batch: Progress | None
) -> bool:
    """After a batch (its transaction committed): report it, let ingest in; True: stop now."""
    if on_batch is not None:
        on_batch(result)
    if pause is not None and pause():
        result.finished = False
        return True
    return False


def prune(
    engine: Engine,
    before: float,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    pause: Callable[[], bool] | None = None,
    on_batch: Progress | None = None,
) -> PruneResult:
    """Remove the bodies of applied and ignored events older than ``before``, then the
    delivered outbound messages older than ``before`` (``store.outbox.prune_batch``, issue 10:
    the one seam for anything else kept under the same retention), in batches.

    Each batch is its own transaction of at most ``batch_size`` rows looked at. ``pause`` runs
    between batches (to let ingest in, and to stop: it returns True to stop early, leaving
    ``finished`` False). ``on_batch`` sees the running totals.
    """
    result = PruneResult(before=before, dry_run=dry_run)
    if dry_run:
        with db.read(engine) as conn:
            result.events, result.bytes = count_prunable(conn, before)
            result.outbound_messages = outbox.count_prunable(conn, before)
        return result
    for state in PRUNABLE_STATES:
        cursor: tuple[float, int] | None = None
        while True:
            with db.write(engine) as conn:
                found = _candidates(conn, state, before, cursor, batch_size)
                if not found:
                    break
                cursor = (found[-1].next_attempt_at, found[-1].id)
                todo = [c for c in found if c.size > 0]
                if todo:
                    result.events += _clear(conn, [c.id for c in todo])
                    result.bytes += sum(c.size for c in todo)
            if _between(result, pause, on_batch):
                return result
    # Keyset over (created_at, id) like the events above: never all ids at once, and never one
    # transaction for a tenant's months of notifications while webhooks wait for the writer.
    message_cursor: tuple[float, str] | None = None
    while True:
        with db.write(engine) as conn:
            batch = outbox.prune_batch(conn, before, message_cursor, batch_size)
        if not batch.seen:
            break
        message_cursor = batch.cursor
        result.outbound_messages += batch.removed
        if _between(result, pause, on_batch):
            return result
    return result


class Pruner:
    """Prunes every ``interval`` seconds, in a thread inside ``serve`` (off when days is 0)."""

    def __init__(
        self,
        engine: Engine,
        days: float,
        interval: float,
        *,
        pause_between: float = PAUSE_BETWEEN,
    ) -> None:
        self.engine = engine
        self.days = days
        self.interval = interval
        self.pause_between = pause_between
        self._stop = threading.Event()

    def run_once(self) -> PruneResult:
        result = prune(
            self.engine,
            cutoff(self.days, clock.now()),
            pause=lambda: self._stop.wait(self.pause_between),
        )
        if result.events or result.outbound_messages:
            log.info("pruned", **result.as_json())
        return result

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the database is away: try again next round
                log.error("prune failed", error=logs.error_text(exc))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="event-pruner", daemon=True)
        thread.start()
        return thread
