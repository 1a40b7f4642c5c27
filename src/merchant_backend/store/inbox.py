"""The inbox: every event we received or fetched, exactly as it came, and its processing state.

States: ``pending`` → ``processing`` (leased by a worker) → ``applied``; on an error
``failed`` (retried after a backoff) and finally ``dead`` (kept, replayable). Types we do not
handle are stored as ``ignored``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson
from sqlalchemy import (
    Connection,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from merchant_backend.errors import Conflict
from merchant_backend.i18n import N_
from merchant_backend.store import sqltext
from merchant_backend.store.inbox_signal import NOTIFY_SQL, notify
from merchant_backend.store.schema import UNAPPLIED_SQL, events
from merchant_backend.vocabulary import HANDLED_EVENTS, HANDLED_SET, INBOX_STATES


class ParsedEvent(Protocol):
    """What the store needs of a parsed event (``stripe.webhook_event.IncomingEvent`` is one)."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def created(self) -> int: ...
    @property
    def object_type(self) -> str | None: ...
    @property
    def object_id(self) -> str | None: ...


class NewEvent(NamedTuple):
    """An inbox row to insert. Immutable; a named tuple because the webhook builds one per
    delivery on its hot path (a frozen dataclass's ``__init__`` costs three times as much)."""

    merchant_id: str
    env: str
    event_id: str
    type: str
    created: int
    object_type: str | None
    object_id: str | None
    payload: bytes
    source: str
    handled: bool

    @classmethod
    def of(
        cls, event: ParsedEvent, merchant_id: str, env: str, payload: bytes, source: str
    ) -> NewEvent:
        """The inbox row of a parsed event, stored with the exact bytes it came as."""
        return cls(
            merchant_id=merchant_id,
            env=env,
            event_id=event.event_id,
            type=event.type,
            created=event.created,
            object_type=event.object_type,
            object_id=event.object_id,
            payload=payload,
            source=source,
            handled=event.type in HANDLED_SET,
        )

    def row(self, received_at: float) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "env": self.env,
            "event_id": self.event_id,
            "type": self.type,
            "created": self.created,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "received_at": received_at,
            "source": self.source,
            "payload": self.payload,
            "state": "pending" if self.handled else "ignored",
            "attempts": 0,
            "next_attempt_at": received_at,
        }


def insert_new(
    conn: Connection, items: Sequence[NewEvent], received_at: float
) -> set[tuple[str, str, str]]:
    """Insert events not stored yet; returns the (merchant, env, event id) that were new."""
    new, wake = _insert(conn.exec_driver_sql, conn.dialect.name, items, received_at)
    if wake:
        notify(conn)
    return new


def insert_new_dbapi(
    cursor: Any, dialect: str, items: Sequence[NewEvent], received_at: float
) -> set[tuple[str, str, str]]:
    """``insert_new`` on a driver cursor in a ``db.raw_write`` transaction (the group commit)."""

    def execute(sql: str, params: tuple[Any, ...]) -> list[Any]:
        cursor.execute(sql, params)
        rows: list[Any] = cursor.fetchall()
        return rows

    new, wake = _insert(execute, dialect, items, received_at)
    if wake and dialect == "postgresql":
        cursor.execute(NOTIFY_SQL)
    return new


def _insert(
    execute: Callable[[str, tuple[Any, ...]], Iterable[Any]],
    dialect: str,
    items: Sequence[NewEvent],
    received_at: float,
) -> tuple[set[Key], bool]:
    """The new keys, and whether any of them is for the worker (so it should be woken)."""
    if not items:
        return set(), False
    unique: dict[tuple[str, str, str], NewEvent] = {}
    for item in items:
        unique.setdefault((item.merchant_id, item.env, item.event_id), item)
    # In key order: two processes inserting the same events (a redelivery racing the first
    # delivery) in different orders would deadlock on the unique index on PostgreSQL.
    keys = sorted(unique)
    new: set[tuple[str, str, str]] = set()
    # The group commit's statement, as SQL text with its parameters flat: SQLAlchemy's
    # "insertmanyvalues" spent more CPU per row (parameter processing, result rows) than the
    # database spent inserting it. One statement per at most _ROWS rows (parameter limits).
    for start in range(0, len(keys), _ROWS):
        chunk = [unique[k] for k in keys[start : start + _ROWS]]
        params: list[Any] = []
        for item in chunk:
            params += (
                item.merchant_id,
                item.env,
                item.event_id,
                item.type,
                item.created,
                item.object_type,
                item.object_id,
                received_at,
                item.source,
                item.payload,
                "pending" if item.handled else "ignored",
                0,
                received_at,
            )
        rows = execute(_insert_sql(dialect, len(chunk)), tuple(params))
        new.update((r[0], r[1], r[2]) for r in rows)
    return new, any(unique[key].handled for key in new)


_ROWS = 1000
_INSERT_COLUMNS = (
    "merchant_id, env, event_id, type, created, object_type, object_id, received_at, source, "
    "payload, state, attempts, next_attempt_at"
)


@functools.lru_cache(maxsize=64)
def _insert_sql(dialect: str, n: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    row = "(" + ", ".join([mark] * _INSERT_COLUMNS.count(",") + [mark]) + ")"
    return (
        f"INSERT INTO events ({_INSERT_COLUMNS}) VALUES {', '.join([row] * n)} "  # noqa: S608
        "ON CONFLICT (merchant_id, env, event_id) DO NOTHING "
        "RETURNING merchant_id, env, event_id"
    )


Key = tuple[str, str, str]


def insert_each(
    conn: Connection, items: Sequence[NewEvent], received_at: float
) -> tuple[set[Key], dict[Key, Exception]]:
    """``insert_new`` one event at a time, each in its own savepoint, for after a batch failed:
    an event the database refuses is returned with its error, every other one is inserted (in
    the caller's one transaction, so one commit still covers them all).

    An ``OperationalError`` (the database gone or locked: no event is to blame) is raised.
    """
    new: set[Key] = set()
    refused: dict[Key, Exception] = {}
    for item in items:
        key = (item.merchant_id, item.env, item.event_id)
        try:
            with conn.begin_nested():
                new |= insert_new(conn, [item], received_at)
        except OperationalError:
            raise
        except Exception as exc:
            refused[key] = exc
    return new, refused


def insert_isolated(
    conn: Connection, items: Sequence[NewEvent], received_at: float
) -> tuple[set[Key], dict[Key, Exception]]:
    """``insert_new`` in a savepoint; if the database refuses the batch, ``insert_each``."""
    try:
        with conn.begin_nested():
            return insert_new(conn, items, received_at), {}
    except OperationalError:
        raise
    except Exception:
        return insert_each(conn, items, received_at)


class ClaimedEvent(NamedTuple):
    id: int
    merchant_id: str
    env: str
    event_id: str
    type: str
    created: int
    payload: bytes
    attempts: int
    received_at: float = 0.0
    source: str = "webhook"


# A lane is what the worker takes turns between: one data set's live deliveries, or the events
# a reconcile run fetched for it. A storm in one lane (a migration, 30 days of reconcile) then
# delays another lane by at most one batch, and never a data set's own live deliveries.
Lane = tuple[str, str, str]  # (merchant_id, env, source)


# The lanes with unapplied events, in key order after a given one, found by a loose index scan
# of ix_events_due: one step per lane, however long the backlog. A step finds the first entry
# after lane (m, e, s) with three index seeks, the first that finds one wins (COALESCE stops
# there): a later source in the same (m, e), a later env of m, a later merchant. (A row-value
# comparison would say it in one, but SQLite seeks on its first column only and would walk all
# of m's backlog.) Each WHERE repeats the partial index's predicate word for word, which is
# what lets SQLite use the index.
def _next_lane(m: str, e: str, s: str) -> str:
    # Built from constants and parameter names at import, never from data.
    pick = f"SELECT id FROM events WHERE {UNAPPLIED_SQL} AND "  # noqa: S608
    return (
        f"COALESCE(({pick}merchant_id = {m} AND env = {e} AND source > {s} "
        "ORDER BY source LIMIT 1), "
        f"({pick}merchant_id = {m} AND env > {e} ORDER BY env, source LIMIT 1), "
        f"({pick}merchant_id > {m} ORDER BY merchant_id, env, source LIMIT 1))"
    )


@functools.cache
def _lanes_sql(dialect: str) -> str:
    # The claim's statements are SQL text run by the driver (store/sqltext.py says why), so
    # parameters are positional: start lane (m, e, s) as _next_lane uses them, then the limit.
    q = sqltext.mark(dialect)
    return f"""
WITH RECURSIVE lane(id, m, e, s) AS (
  SELECT id, merchant_id, env, source FROM events WHERE id = {_next_lane(q, q, q)}
  UNION ALL
  SELECT n.id, n.merchant_id, n.env, n.source FROM lane JOIN events AS n
  ON n.id = {_next_lane("lane.m", "lane.e", "lane.s")}
)
SELECT m, e, s FROM lane LIMIT {q}
"""  # noqa: S608 (constants only)


def _lanes_from(conn: Connection, start: Lane, limit: int) -> list[Lane]:
    m, e, s = start
    rows = sqltext.run(conn, _lanes_sql(conn.dialect.name), (m, e, s, m, e, m, limit))
    return [(r[0], r[1], r[2]) for r in rows]


def lanes(conn: Connection, *, after: Lane | None, limit: int) -> list[Lane]:
    """Up to ``limit`` lanes with unapplied events, in key order from just after ``after``,
    wrapping round to the first ones (so every lane gets its turn when there are more lanes
    than events in a batch)."""
    found = _lanes_from(conn, after or ("", "", ""), limit)
    if after is not None and len(found) < limit:
        wrapped = _lanes_from(conn, ("", "", ""), limit - len(found))
        found += [lane for lane in wrapped if lane <= after]
    return found


# Claiming moves next_attempt_at to the end of the lease, so one column says when any
# unapplied event is due: pending at once, failed after its backoff, processing once its
# worker's lease ran out. Oldest due first within a lane; the WHERE repeats the partial
# index's predicate (UNAPPLIED_SQL) word for word, so SQLite walks ix_events_due.
_DUE_IN_LANE = (
    f"events.merchant_id = {{m}} AND events.env = {{e}} AND events.source = {{s}} "
    f"AND events.{UNAPPLIED_SQL} AND events.next_attempt_at <= {{now}} "
    "ORDER BY events.next_attempt_at, events.id LIMIT {n}"
)


@functools.lru_cache(maxsize=512)
def _pick_sqlite_sql(n_lanes: int) -> str:
    q = sqltext.mark("sqlite")
    lane_rows = ", ".join([sqltext.marks("sqlite", 4)] * n_lanes)
    due = _DUE_IN_LANE.format(m="lane.m", e="lane.e", s="lane.s", now=q, n=q)
    # SQLite has no LATERAL: per lane row, a correlated subquery walks ix_events_due (its
    # WHERE repeats the index's predicate) and the picked ids are looked up by rowid.
    return (
        f"WITH lane (n, m, e, s) AS (VALUES {lane_rows}) "  # noqa: S608 (constants only)
        "SELECT lane.n, pick.id FROM lane JOIN events AS pick ON pick.id IN "
        f"(SELECT events.id FROM events WHERE {due}) "
        "ORDER BY lane.n, pick.next_attempt_at, pick.id"
    )


def _pick_sqlite(
    conn: Connection, lanes_: list[Lane], now: float, per_lane: int
) -> list[list[int]]:
    # One statement for all lanes: one per lane cost a batch spread over many merchants a
    # statement per merchant (1,000 lanes: most of the claim's CPU).
    return _picked(conn, _pick_sqlite_sql(len(lanes_)), lanes_, now, per_lane)


@functools.lru_cache(maxsize=512)
def _pick_postgresql_sql(n_lanes: int) -> str:
    q = sqltext.mark("postgresql")
    lane_rows = ", ".join([sqltext.marks("postgresql", 4)] * n_lanes)
    due = _DUE_IN_LANE.format(m="lane.m", e="lane.e", s="lane.s", now=q, n=q)
    return (
        f"SELECT lane.n, pick.id FROM (VALUES {lane_rows}) AS lane (n, m, e, s) "  # noqa: S608
        f"JOIN LATERAL (SELECT events.id, events.next_attempt_at FROM events WHERE {due} "
        "FOR UPDATE SKIP LOCKED) AS pick ON true "
        "ORDER BY lane.n, pick.next_attempt_at, pick.id"
    )


def _pick_postgresql(
    conn: Connection, lanes_: list[Lane], now: float, per_lane: int
) -> list[list[int]]:
    # One statement: per lane (LATERAL), its oldest due events, locked with SKIP LOCKED so
    # workers side by side take different ones. (A window function cannot be combined with
    # FOR UPDATE; a LIMIT per lane can, and walks ix_events_due.)
    return _picked(conn, _pick_postgresql_sql(len(lanes_)), lanes_, now, per_lane)


def _picked(
    conn: Connection, sql: str, lanes_: list[Lane], now: float, per_lane: int
) -> list[list[int]]:
    """Run a pick statement over numbered lane rows; each lane's ids, oldest due first."""
    params: list[Any] = []
    for i, (m, e, s) in enumerate(lanes_):
        params += (i, m, e, s)
    params += (now, per_lane)
    picked: list[list[int]] = [[] for _ in lanes_]
    for n, id_ in sqltext.run(conn, sql, params):
        picked[n].append(id_)
    return picked


_CLAIMED_COLUMNS = (
    "id, merchant_id, env, event_id, type, created, payload, attempts, received_at, source"
)


@functools.lru_cache(maxsize=512)
def _lease_sql(dialect: str, n: int) -> str:
    q = sqltext.mark(dialect)
    return (
        f"UPDATE events SET state = 'processing', locked_by = {q}, "  # noqa: S608
        f"lease_until = {q}, next_attempt_at = {q}, attempts = attempts + 1 "
        f"WHERE id IN {sqltext.marks(dialect, n)} RETURNING {_CLAIMED_COLUMNS}"
    )


def round_robin(per_lane: Sequence[Sequence[int]], limit: int) -> list[int]:
    """Pure: the first of every lane, then the second of every lane, … up to ``limit``."""
    out: list[int] = []
    depth = max((len(p) for p in per_lane), default=0)
    for rank in range(depth):
        for picked in per_lane:
            if rank < len(picked):
                out.append(picked[rank])
                if len(out) == limit:
                    return out
    return out


def claim(
    conn: Connection,
    worker_id: str,
    *,
    now: float,
    lease_seconds: float,
    limit: int,
    after: Lane | None = None,
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due events to this worker, taking turns between lanes.

    Round robin across (merchant, env, source), oldest due first within each; ``after`` is
    the last lane the caller served, so with more lanes than ``limit`` the next batch goes on
    from there. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side
    by side; an expired lease (a worker that died) makes the event due again.
    """
    ids = _due_ids(conn, now=now, limit=limit, after=after)
    if not ids:
        return []
    until = now + lease_seconds
    rows = sqltext.run(
        conn, _lease_sql(conn.dialect.name, len(ids)), (worker_id, until, until, *ids)
    )
    return _in_order(ids, rows)


def take_due(
    conn: Connection, *, now: float, limit: int, after: Lane | None = None
) -> list[ClaimedEvent]:
    """Up to ``limit`` due events, chosen as ``claim`` chooses them, without a lease: for a
    caller that applies and marks them in this same writing transaction (SQLite's worker).

    SQLite has one writer at a time, so no other worker can take them before this
    transaction ends, and a crash rolls it back to the events being due at once; a lease
    would only cost a write of each row and its two queue indexes, and a commit. Each
    event's ``attempts`` is the one this is (stored + 1), as after a lease.
    """
    ids = _due_ids(conn, now=now, limit=limit, after=after)
    if not ids:
        return []
    return _in_order(ids, sqltext.run(conn, _take_sql(conn.dialect.name, len(ids)), ids))


def _due_ids(conn: Connection, *, now: float, limit: int, after: Lane | None) -> list[int]:
    found = lanes(conn, after=after, limit=limit)
    if not found:
        return []
    per_lane = math.ceil(limit / len(found))
    if conn.dialect.name == "postgresql":
        picked = _pick_postgresql(conn, found, now, per_lane)
    else:
        picked = _pick_sqlite(conn, found, now, per_lane)
    return round_robin(picked, limit)


def _in_order(ids: list[int], rows: Iterable[Any]) -> list[ClaimedEvent]:
    """The rows as claimed events, in the round robin's order."""
    order = {id_: n for n, id_ in enumerate(ids)}
    claimed = [ClaimedEvent(*r) for r in rows]
    claimed.sort(key=lambda c: order[c.id])
    return claimed


@functools.lru_cache(maxsize=512)
def _take_sql(dialect: str, n: int) -> str:
    columns = _CLAIMED_COLUMNS.replace("attempts", "attempts + 1")
    return f"SELECT {columns} FROM events WHERE id IN {sqltext.marks(dialect, n)}"  # noqa: S608


@functools.lru_cache(maxsize=512)
def _mark_applied_sql(dialect: str, n: int, leased: bool) -> str:
    q = sqltext.mark(dialect)
    # A lease counted the attempt when it was taken; an event taken without one
    # (``take_due``) counts it here, in the transaction that took it.
    attempts = "" if leased else ", attempts = attempts + 1"
    mine = f" AND locked_by = {q}" if leased else ""
    return (
        f"UPDATE events SET state = 'applied', applied_at = {q}, lease_until = NULL, "  # noqa: S608
        f"locked_by = NULL, last_error = NULL{attempts} "
        f"WHERE id IN {sqltext.marks(dialect, n)}{mine}"
    )


def mark_applied(conn: Connection, ids: Sequence[int], worker_id: str | None, at: float) -> None:
    """``worker_id``: whose lease the events are under; None for events taken by ``take_due``
    in this transaction."""
    if not ids:
        return
    sql = _mark_applied_sql(conn.dialect.name, len(ids), worker_id is not None)
    sqltext.run(conn, sql, (at, *ids) if worker_id is None else (at, *ids, worker_id))


def mark_failed(
    conn: Connection,
    event_pk: int,
    worker_id: str | None,
    *,
    error: str,
    dead: bool,
    retry_at: float,
) -> None:
    """``worker_id`` as for ``mark_applied``."""
    if worker_id is None:
        mine = events.c.id == event_pk
        counted = {"attempts": events.c.attempts + 1}
    else:
        mine = and_(events.c.id == event_pk, events.c.locked_by == worker_id)
        counted = {}
    conn.execute(
        update(events)
        .where(mine)
        .values(
            state="dead" if dead else "failed",
            last_error=error[:2000],
            next_attempt_at=retry_at,
            lease_until=None,
            locked_by=None,
            **counted,
        )
    )


class EventPruned(Conflict):
    """The event's body was removed by retention: there is nothing left to apply."""

    code = "event_pruned"


PRUNED = N_(
    "event %(event_id)s's body was removed after the retention period "
    "(MERCHANT_BACKEND_EVENT_RETENTION_DAYS): there is nothing left to replay"
)


def replay(conn: Connection, merchant_id: str, env: str, event_id: str, at: float) -> bool:
    """Put an event back in line, whatever its state (harmless: applying is idempotent).

    A type we do not handle stays ``ignored``: a worker would otherwise mark it ``applied``
    although it changed nothing. False if there is no such event; ``EventPruned`` if retention
    removed its body.
    """
    scope = and_(
        events.c.merchant_id == merchant_id, events.c.env == env, events.c.event_id == event_id
    )
    result = conn.execute(
        update(events)
        .where(scope, func.length(events.c.payload) > 0)
        .values(
            state=case((events.c.type.in_(HANDLED_EVENTS), "pending"), else_="ignored"),
            attempts=0,
            next_attempt_at=at,
            lease_until=None,
            locked_by=None,
        )
    )
    if result.rowcount:
        return True
    if conn.execute(select(events.c.id).where(scope)).first() is not None:
        raise EventPruned.of(PRUNED, {"event_id": event_id})
    return False


@dataclass(frozen=True)
class InboxEntry:
    id: int
    event_id: str
    type: str
    created: int
    received_at: float
    source: str
    attempts: int
    last_error: str | None
    state: str
    object_type: str | None
    object_id: str | None
    next_attempt_at: float
    applied_at: float | None = None
    payload: bytes | None = None

    def as_json(self, with_payload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.event_id,
            "type": self.type,
            "created": self.created,
            # Unix seconds to the millisecond: their difference is the event's apply lag.
            "received_at": _ms(self.received_at),
            "applied_at": _ms(self.applied_at) if self.applied_at is not None else None,
            "source": self.source,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "state": self.state,
            "object_type": self.object_type,
            "object_id": self.object_id,
        }
        if self.state == "failed":
            out["next_attempt_at"] = int(self.next_attempt_at)
        if with_payload and self.payload is not None:
            # Retention (store/retention.py) empties an old applied or ignored event's body.
            out["pruned"] = len(self.payload) == 0
            out["event"] = orjson.loads(self.payload) if self.payload else None
        return out


def _ms(t: float) -> float:
    return round(t, 3)


# Everything an InboxEntry holds but the payload: lists leave it out, `get` adds it.
ENTRY_COLUMNS = (
    events.c.id,
    events.c.event_id,
    events.c.type,
    events.c.created,
    events.c.received_at,
    events.c.source,
    events.c.attempts,
    events.c.last_error,
    events.c.state,
    events.c.object_type,
    events.c.object_id,
    events.c.next_attempt_at,
    events.c.applied_at,
)


def get(conn: Connection, merchant_id: str, env: str, event_id: str) -> InboxEntry | None:
    row = conn.execute(
        select(*ENTRY_COLUMNS, events.c.payload).where(
            events.c.merchant_id == merchant_id,
            events.c.env == env,
            events.c.event_id == event_id,
        )
    ).first()
    return InboxEntry(**row._mapping) if row else None


def list_page(
    conn: Connection,
    merchant_id: str,
    env: str,
    *,
    limit: int,
    starting_after: str | None = None,
    type_: str | None = None,
    state: str | None = None,
    object_id: str | None = None,
) -> tuple[list[InboxEntry], bool]:
    """Newest first by Stripe's ``created``, then by arrival."""
    scope = and_(events.c.merchant_id == merchant_id, events.c.env == env)
    query = select(*ENTRY_COLUMNS).where(scope)
    if type_ is not None:
        query = query.where(events.c.type == type_)
    if state is not None:
        query = query.where(events.c.state == state)
    if object_id is not None:
        query = query.where(events.c.object_id == object_id)
    if starting_after is not None:
        anchor = conn.execute(
            select(events.c.created, events.c.id).where(scope, events.c.event_id == starting_after)
        ).first()
        if anchor is None:
            raise LookupError(starting_after)
        query = query.where(
            or_(
                events.c.created < anchor.created,
                and_(events.c.created == anchor.created, events.c.id < anchor.id),
            )
        )
    rows = conn.execute(
        query.order_by(events.c.created.desc(), events.c.id.desc()).limit(limit + 1)
    ).all()
    return [InboxEntry(**r._mapping) for r in rows[:limit]], len(rows) > limit


def backlog(conn: Connection) -> int:
    """Events waiting to be applied (pending or failed), over all merchants."""
    return int(
        conn.execute(
            select(func.count()).where(events.c.state.in_(("pending", "failed")))
        ).scalar_one()
    )


def counts_by_state(conn: Connection, merchant_id: str, env: str) -> dict[str, int]:
    rows = conn.execute(
        select(events.c.state, func.count())
        .where(events.c.merchant_id == merchant_id, events.c.env == env)
        .group_by(events.c.state)
    )
    counts = dict.fromkeys(INBOX_STATES, 0)
    counts.update({r[0]: int(r[1]) for r in rows})
    return counts
