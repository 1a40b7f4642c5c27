"""The outbox: a message for every change of a projection, in the transaction that made it.

``objects.apply_snapshots`` calls ``append`` with what its upsert actually changed (an object
created, or its snapshot replaced under the ordering rule); a duplicate or an older snapshot
changes nothing and so sends nothing. Because the message is written in the same transaction,
a rolled-back apply leaves no message and a committed one always has its message.

Hazards and how they are avoided:
- *A reader of the feed skipping a message.* ``sequence`` comes from a per-(merchant, env)
  counter row that the appending transaction updates, and so locks until it commits: a later
  transaction gets a greater number only after the earlier one has committed (or rolled back,
  giving its numbers back). A reader that has seen sequence N never later finds an N-1.
- *An older snapshot arriving after a newer one.* Deliveries of one object to one destination
  go one at a time in sequence order (``claim`` skips a delivery while an older one of the same
  object is still pending, retrying or in flight).
- *Two dispatchers sending the same delivery at once.* ``claim`` leases rows with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers); a result is recorded
  only by the dispatcher that still holds the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Select

from merchant_backend.store import db, sqltext
from merchant_backend.store import destinations as destination_store
from merchant_backend.store.schema import (
    outbound_attempts,
    outbound_deliveries,
    outbound_destinations,
    outbound_messages,
)

DELIVERY_STATES = ("pending", "delivering", "retrying", "delivered", "failed")
OPEN_STATES = ("pending", "delivering", "retrying")
EXCERPT_CHARS = 500
CLAIM_WINDOW = 200
CLAIM_WINDOWS = 5


class ChangeSignal:
    """Wakes threads in this process when messages were committed (feed long polls, the
    dispatcher). Other processes notice by polling."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    async def wait_async(self, seen: int, timeout: float) -> None:
        """Like ``wait``, without holding a thread (for the feed's long poll)."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(woken.set)

        self.subscribe(wake)
        try:
            if self._generation != seen:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), max(timeout, 0.0))
        finally:
            self.unsubscribe(wake)

    def subscribe(self, listener: Callable[[], None]) -> None:
        with self._cond:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._cond, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation moves past ``seen`` or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout=max(timeout, 0.0))
            return self._generation


# A message was committed (the change feed's long polls wait on it).
COMMITTED = ChangeSignal()
# A delivery became due (the dispatchers wait on it). Apart from COMMITTED because most batches
# write messages with no destination to deliver them to: waking the dispatcher for those cost
# a claim transaction per worker batch, holding SQLite's write lock against the inbox writer.
DUE = ChangeSignal()


class Change(NamedTuple):
    """A projection that changed: the object as now stored and what replaced what."""

    object_type: str
    stripe_id: str
    data: dict[str, Any]
    previous_status: str | None
    event_id: str | None
    event_type: str | None
    event_created: int
    # ``data`` as JSON, when the caller has it already (the projection's upsert stores exactly
    # this text): the message embeds it instead of serializing the object a second time.
    data_json: str = ""


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def message_document(
    *,
    message_id: str,
    type_: str,
    merchant_id: str | None,
    env: str,
    sequence: int,
    created: float,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The message as signed, sent and listed by the feed (CONTRACT.md, second round)."""
    return {
        "id": message_id,
        "type": type_,
        "merchant_id": merchant_id,
        "env": env,
        "sequence": sequence,
        "created": int(created),
        "data": data,
    }


def change_data(change: Change) -> dict[str, Any]:
    cause = None
    if change.event_id:
        cause = {
            "event_id": change.event_id,
            "event_type": change.event_type,
            "event_created": change.event_created,
        }
    obj = orjson.Fragment(change.data_json) if change.data_json else change.data
    return {"object": obj, "previous_status": change.previous_status, "cause": cause}


def object_ref(merchant_id: str, env: str, object_type: str, stripe_id: str) -> str:
    return f"{merchant_id}/{env}/{object_type}/{stripe_id}"


def _reserve_many(
    conn: Connection, counts: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str], int]:
    """Take ``count`` sequence numbers for each (merchant, env, count), in one statement;
    returns the first of each. Locks the counters until commit (in the order given: callers
    pass them sorted, so that two PostgreSQL transactions take them in the same order)."""
    returned = sqltext.insert_rows(
        conn, "outbound_sequences", ("merchant_id", "env", "last"), counts, _RESERVE
    )
    asked = {(m, e): count for m, e, count in counts}
    return {(r[0], r[1]): int(r[2]) - asked[(r[0], r[1])] + 1 for r in returned}


# append runs for every batch the worker applies: its statements are SQL text (store/sqltext.py
# says why). excluded.last is the count just asked for.
_RESERVE = (
    "ON CONFLICT (merchant_id, env) "
    "DO UPDATE SET last = outbound_sequences.last + excluded.last RETURNING merchant_id, env, last"
)


MESSAGE_COLUMNS = (
    "id",
    "merchant_id",
    "env",
    "sequence",
    "type",
    "object_type",
    "object_id",
    "created_at",
    "payload",
)
DELIVERY_COLUMNS = (
    "message_id",
    "destination_id",
    "object_ref",
    "sequence",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
)


def append(
    conn: Connection, merchant_id: str, env: str, changes: Sequence[Change], at: float
) -> list[str]:
    """``append_many`` for one data set: its message ids, in the order of ``changes``."""
    return append_many(conn, {(merchant_id, env): changes}, at)


def append_many(
    conn: Connection, changes: Mapping[tuple[str, str], Sequence[Change]], at: float
) -> list[str]:
    """Write a message per change and a pending delivery per destination that wants it, for
    any number of (merchant, env) data sets: four statements, however many merchants."""
    wanted = [(key, batch) for key, batch in sorted(changes.items()) if batch]
    if not wanted:
        return []
    firsts = _reserve_many(conn, [(m, e, len(batch)) for (m, e), batch in wanted])
    targets = destination_store.targets_many(conn, [key for key, _ in wanted])
    messages: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    for (merchant_id, env), batch in wanted:
        first = firsts[(merchant_id, env)]
        dests = targets[(merchant_id, env)]
        for n, change in enumerate(batch):
            message_id = new_message_id()
            sequence = first + n
            type_ = f"{change.object_type}.changed"
            doc = message_document(
                message_id=message_id,
                type_=type_,
                merchant_id=merchant_id,
                env=env,
                sequence=sequence,
                created=at,
                data=change_data(change),
            )
            messages.append(
                (
                    message_id,
                    merchant_id,
                    env,
                    sequence,
                    type_,
                    change.object_type,
                    change.stripe_id,
                    at,
                    orjson.dumps(doc).decode(),
                )
            )
            ref = object_ref(merchant_id, env, change.object_type, change.stripe_id)
            deliveries.extend(
                _pending(message_id, dest.id, ref, sequence, at)
                for dest in dests
                if dest.wants(change.object_type)
            )
    sqltext.insert_rows(conn, "outbound_messages", MESSAGE_COLUMNS, messages)
    if deliveries:
        sqltext.insert_rows(conn, "outbound_deliveries", DELIVERY_COLUMNS, deliveries)
        db.after_commit(conn, DUE.notify)
    db.after_commit(conn, COMMITTED.notify)
    return [m[0] for m in messages]


def _pending(
    message_id: str, destination_id: str, ref: str, sequence: int, at: float
) -> tuple[Any, ...]:
    """A new delivery's row, in ``DELIVERY_COLUMNS`` order."""
    return (message_id, destination_id, ref, sequence, "pending", 0, at, at)


def _pending_values(
    message_id: str, destination_id: str, ref: str, sequence: int, at: float
) -> dict[str, Any]:
    return dict(
        zip(DELIVERY_COLUMNS, _pending(message_id, destination_id, ref, sequence, at), strict=True)
    )


def append_test(conn: Connection, destination: destination_store.Destination, at: float) -> str:
    """A ``test`` message for one destination (sequence 0: not part of the feed)."""
    message_id = new_message_id()
    doc = message_document(
        message_id=message_id,
        type_="test",
        merchant_id=destination.merchant_id,
        env=destination.env,
        sequence=0,
        created=at,
        data={
            "object": None,
            "previous_status": None,
            "cause": None,
            "destination_id": destination.id,
        },
    )
    conn.execute(
        insert(outbound_messages).values(
            id=message_id,
            merchant_id=destination.merchant_id,
            env=destination.env,
            sequence=0,
            type="test",
            object_type=None,
            object_id=None,
            created_at=at,
            payload=orjson.dumps(doc).decode(),
        )
    )
    conn.execute(
        insert(outbound_deliveries).values(
            **_pending_values(message_id, destination.id, message_id, 0, at)
        )
    )
    db.after_commit(conn, DUE.notify)  # a test message is not in the change feed
    return message_id


# --- The feed ---------------------------------------------------------------------------


def feed_page(
    conn: Connection, merchant_id: str, env: str, *, after: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Messages with a sequence greater than ``after``, oldest first."""
    rows = conn.execute(
        select(outbound_messages.c.payload)
        .where(
            outbound_messages.c.merchant_id == merchant_id,
            outbound_messages.c.env == env,
            outbound_messages.c.sequence > after,
        )
        .order_by(outbound_messages.c.sequence)
        .limit(limit + 1)
    ).all()
    return [orjson.loads(r.payload) for r in rows[:limit]], len(rows) > limit


def get_message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(outbound_messages.c.payload).where(outbound_messages.c.id == message_id)
    ).first()
    return orjson.loads(row.payload) if row else None


# --- Dispatching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    message_id: str
    destination_id: str
    destination_merchant_id: str | None
    env: str
    url: str
    secret_enc: str
    payload: str
    attempts: int
    first_attempt_at: float
    message_created_at: float


def _due(at: float) -> Any:
    d = outbound_deliveries
    return or_(
        and_(d.c.state.in_(("pending", "retrying")), d.c.next_attempt_at <= at),
        and_(d.c.state == "delivering", d.c.lease_until < at),
    )


def destinations_with_due_work(
    conn: Connection, at: float, *, exclude: Sequence[str] = (), limit: int = 200
) -> list[str]:
    """Enabled destinations with a due delivery: one index probe per destination, never a
    scan of the backlog (which may hold a failing destination's thousands)."""
    d, t = outbound_deliveries, outbound_destinations
    due_here = exists(select(d.c.id).where(d.c.destination_id == t.c.id, _due(at)))
    query: Select[Any] = (
        select(t.c.id).where(t.c.enabled.is_(True), due_here).order_by(t.c.id).limit(limit)
    )
    if exclude:
        query = query.where(t.c.id.not_in(list(exclude)))
    return [r[0] for r in conn.execute(query)]


def claim(
    conn: Connection,
    worker_id: str,
    destination_id: str,
    *,
    at: float,
    lease_seconds: float,
    limit: int,
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries of one destination to this dispatcher: only the
    oldest open delivery of each object (its head of line), so one object's messages go out
    one at a time in sequence order.

    Two plain index range queries per window of due deliveries, filtered here: a correlated
    NOT EXISTS (or a join to an aggregate) let PostgreSQL pick a quadratic plan on a table
    it had no statistics for yet (a burst into a fresh outbox). A window whose deliveries
    all wait behind older ones is skipped, up to ``CLAIM_WINDOWS`` of them per call.
    """
    d = outbound_deliveries
    chosen: list[int] = []
    after_id = 0
    for _ in range(CLAIM_WINDOWS):
        due = conn.execute(
            select(d.c.id, d.c.object_ref, d.c.sequence)
            .where(d.c.destination_id == destination_id, _due(at), d.c.id > after_id)
            .order_by(d.c.id)
            .limit(CLAIM_WINDOW)
        ).all()
        if not due:
            break
        refs = sorted({r.object_ref for r in due})
        heads = dict(
            conn.execute(
                select(d.c.object_ref, func.min(d.c.sequence))
                .where(
                    d.c.destination_id == destination_id,
                    d.c.object_ref.in_(refs),
                    d.c.state.in_(OPEN_STATES),
                )
                .group_by(d.c.object_ref)
            ).all()
        )
        taken: set[str] = set()
        for r in due:
            if heads.get(r.object_ref) == r.sequence and r.object_ref not in taken:
                chosen.append(r.id)
                taken.add(r.object_ref)
                if len(chosen) >= limit:
                    break
        if chosen or len(due) < CLAIM_WINDOW:
            break
        after_id = due[-1].id
    if not chosen:
        return []
    # Locked and checked again: another dispatcher may have taken some meanwhile.
    pick = select(d.c.id).where(d.c.id.in_(chosen), _due(at)).order_by(d.c.id)
    return _lease(conn, pick, worker_id, at=at, lease_seconds=lease_seconds)


def claim_message(
    conn: Connection,
    worker_id: str,
    destination_id: str,
    message_id: str,
    *,
    at: float,
    lease_seconds: float,
) -> ClaimedDelivery | None:
    """Lease the delivery of one message to one destination, if it is due (``test``)."""
    d = outbound_deliveries
    pick = select(d.c.id).where(
        d.c.destination_id == destination_id, d.c.message_id == message_id, _due(at)
    )
    claimed = _lease(conn, pick, worker_id, at=at, lease_seconds=lease_seconds)
    return claimed[0] if claimed else None


def _lease(
    conn: Connection, pick: Select[Any], worker_id: str, *, at: float, lease_seconds: float
) -> list[ClaimedDelivery]:
    d = outbound_deliveries
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=d)
    ids = [r[0] for r in conn.execute(pick)]
    if not ids:
        return []
    conn.execute(
        update(d)
        .where(d.c.id.in_(ids))
        .values(
            state="delivering",
            locked_by=worker_id,
            lease_until=at + lease_seconds,
            attempts=d.c.attempts + 1,
            first_attempt_at=func.coalesce(d.c.first_attempt_at, at),
        )
    )
    m, t = outbound_messages, outbound_destinations
    rows = conn.execute(
        select(
            d.c.id,
            d.c.message_id,
            d.c.destination_id,
            d.c.attempts,
            d.c.first_attempt_at,
            t.c.merchant_id.label("destination_merchant_id"),
            t.c.env,
            t.c.url,
            t.c.secret_enc,
            m.c.payload,
            m.c.created_at.label("message_created_at"),
        )
        .join(m, m.c.id == d.c.message_id)
        .join(t, t.c.id == d.c.destination_id)
        .where(d.c.id.in_(ids))
        .order_by(d.c.id)
    )
    return [ClaimedDelivery(**r._mapping) for r in rows]


@dataclass(frozen=True)
class Attempt:
    """What one try of a delivery gave."""

    status_code: int | None
    duration: float
    excerpt: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Outcome:
    """A finished attempt to record: ``delivered``, ``retrying`` (until ``retry_at``) or
    ``failed`` (kept, replayable)."""

    item: ClaimedDelivery
    attempt: Attempt
    at: float
    state: str
    retry_at: float | None = None


def _bounded(text: str | None) -> str | None:
    return (text or "")[:EXCERPT_CHARS] or None


def record(conn: Connection, worker_id: str, outcomes: Sequence[Outcome]) -> None:
    """Write outcomes together: the attempt log, each delivery's state (only where this
    dispatcher still holds the lease: after a lost lease another one owns the row), and each
    destination's last success. Failures per destination are the caller's (``record_failure``).
    """
    if not outcomes:
        return
    conn.execute(
        insert(outbound_attempts),
        [
            {
                "delivery_id": o.item.id,
                "destination_id": o.item.destination_id,
                "message_id": o.item.message_id,
                "attempt": o.item.attempts,
                "at": o.at,
                "status_code": o.attempt.status_code,
                "duration": o.attempt.duration,
                "excerpt": _bounded(o.attempt.excerpt),
                "error": _bounded(o.attempt.error),
            }
            for o in outcomes
        ],
    )
    d = outbound_deliveries
    stmt = (
        update(d)
        .where(
            d.c.id == bindparam("b_id"),
            d.c.state == "delivering",
            d.c.locked_by == bindparam("b_worker"),
        )
        .values(
            state=bindparam("b_state"),
            next_attempt_at=func.coalesce(bindparam("b_retry_at"), d.c.next_attempt_at),
            delivered_at=bindparam("b_delivered_at"),
            last_attempt_at=bindparam("b_at"),
            last_status=bindparam("b_status"),
            last_error=bindparam("b_error"),
            last_excerpt=bindparam("b_excerpt"),
            last_duration=bindparam("b_duration"),
            lease_until=None,
            locked_by=None,
        )
    )
    conn.execute(
        stmt,
        [
            {
                "b_id": o.item.id,
                "b_worker": worker_id,
                "b_state": o.state,
                "b_retry_at": o.retry_at,
                "b_delivered_at": o.at if o.state == "delivered" else None,
                "b_at": o.at,
                "b_status": o.attempt.status_code,
                "b_error": _bounded(o.attempt.error),
                "b_excerpt": _bounded(o.attempt.excerpt),
                "b_duration": o.attempt.duration,
            }
            for o in outcomes
        ],
    )
    last_success: dict[str, float] = {}
    for o in outcomes:
        if o.state == "delivered":
            dest = o.item.destination_id
            last_success[dest] = max(o.at, last_success.get(dest, 0.0))
    for dest, at in sorted(last_success.items()):
        destination_store.record_success(conn, dest, at)


# --- What the management API shows ---------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    id: int
    message_id: str
    message_type: str
    # The message's merchant: for an installation-wide destination, whose change it carries
    # (None for a test message).
    merchant_id: str | None
    sequence: int
    state: str
    attempts: int
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    last_excerpt: str | None
    last_duration: float | None
    delivered_at: float | None
    created_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "type": self.message_type,
            "merchant_id": self.merchant_id,
            "sequence": self.sequence,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": (
                round(self.next_attempt_at, 3)
                if self.state in ("pending", "retrying") and self.next_attempt_at
                else None
            ),
            "last_attempt_at": _r(self.last_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_excerpt": self.last_excerpt,
            "last_duration_ms": None
            if self.last_duration is None
            else round(self.last_duration * 1000, 1),
            "delivered_at": _r(self.delivered_at),
            "created": int(self.created_at),
        }


@dataclass(frozen=True)
class AttemptView:
    at: float
    message_id: str
    attempt: int
    status_code: int | None
    duration: float
    excerpt: str | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "message_id": self.message_id,
            "attempt": self.attempt,
            "status_code": self.status_code,
            "duration_ms": round(self.duration * 1000, 1),
            "excerpt": self.excerpt,
            "error": self.error,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def deliveries_page(
    conn: Connection,
    destination_id: str,
    *,
    limit: int,
    before_id: int | None = None,
    state: str | None = None,
) -> tuple[list[DeliveryView], bool]:
    """Newest first."""
    d, m = outbound_deliveries, outbound_messages
    query = (
        select(d, m.c.type.label("message_type"), m.c.merchant_id.label("message_merchant_id"))
        .join(m, m.c.id == d.c.message_id)
        .where(d.c.destination_id == destination_id)
    )
    if before_id is not None:
        query = query.where(d.c.id < before_id)
    if state is not None:
        query = query.where(d.c.state == state)
    rows = conn.execute(query.order_by(d.c.id.desc()).limit(limit + 1)).all()
    views = [
        DeliveryView(
            id=r.id,
            message_id=r.message_id,
            message_type=r.message_type,
            merchant_id=r.message_merchant_id,
            sequence=r.sequence,
            state=r.state,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            last_attempt_at=r.last_attempt_at,
            last_status=r.last_status,
            last_error=r.last_error,
            last_excerpt=r.last_excerpt,
            last_duration=r.last_duration,
            delivered_at=r.delivered_at,
            created_at=r.created_at,
        )
        for r in rows[:limit]
    ]
    return views, len(rows) > limit


def attempt_log(conn: Connection, destination_id: str, *, limit: int) -> list[AttemptView]:
    """The latest attempts, newest first."""
    a = outbound_attempts
    rows = conn.execute(
        select(a).where(a.c.destination_id == destination_id).order_by(a.c.id.desc()).limit(limit)
    )
    return [
        AttemptView(
            at=r.at,
            message_id=r.message_id,
            attempt=r.attempt,
            status_code=r.status_code,
            duration=r.duration,
            excerpt=r.excerpt,
            error=r.error,
        )
        for r in rows
    ]


def counts(conn: Connection, destination_id: str) -> dict[str, int]:
    d = outbound_deliveries
    out = dict.fromkeys(DELIVERY_STATES, 0)
    rows = conn.execute(
        select(d.c.state, func.count())
        .where(d.c.destination_id == destination_id)
        .group_by(d.c.state)
    )
    out.update({r[0]: int(r[1]) for r in rows})
    return out


# --- Replay and retention --------------------------------------------------------------------


def replay_message(
    conn: Connection, destination: destination_store.Destination, message_id: str, at: float
) -> bool:
    """Send a message to a destination again (or for the first time, if it is in its scope).

    Returns False if the message does not exist or is not one the destination may receive.
    """
    d = outbound_deliveries
    m = conn.execute(select(outbound_messages).where(outbound_messages.c.id == message_id)).first()
    if m is None or m.env != destination.env:
        return False
    if destination.merchant_id is not None and m.merchant_id != destination.merchant_id:
        return False
    if m.type == "test" and m.merchant_id != destination.merchant_id:
        return False
    restarted = conn.execute(
        update(d)
        .where(d.c.message_id == message_id, d.c.destination_id == destination.id)
        .where(d.c.state != "delivering")
        .values(state="pending", next_attempt_at=at, first_attempt_at=None)
    )
    if not restarted.rowcount:
        held = conn.execute(
            select(d.c.id).where(d.c.message_id == message_id, d.c.destination_id == destination.id)
        ).first()
        if held is None:
            ref = (
                message_id
                if m.type == "test"
                else object_ref(m.merchant_id, m.env, m.object_type, m.object_id)
            )
            conn.execute(
                insert(d).values(**_pending_values(message_id, destination.id, ref, m.sequence, at))
            )
    db.after_commit(conn, DUE.notify)
    return True


def replay_failed(conn: Connection, destination_id: str, *, since: float, at: float) -> int:
    """Every failed delivery of this destination whose message was created at or after
    ``since`` goes out again; returns how many."""
    d, m = outbound_deliveries, outbound_messages
    recent = select(m.c.id).where(m.c.created_at >= since)
    result = conn.execute(
        update(d)
        .where(d.c.destination_id == destination_id, d.c.state == "failed")
        .where(d.c.message_id.in_(recent.scalar_subquery()))
        .values(state="pending", next_attempt_at=at, first_attempt_at=None)
    )
    db.after_commit(conn, COMMITTED.notify)
    return int(result.rowcount or 0)


def _prunable(before: float) -> Any:
    """Created before ``before``, and every delivery delivered (or none at all)."""
    d, m = outbound_deliveries, outbound_messages
    unfinished = exists(select(d.c.id).where(d.c.message_id == m.c.id, d.c.state != "delivered"))
    return and_(m.c.created_at < before, ~unfinished)


def count_prunable(conn: Connection, before: float) -> int:
    """How many messages pruning at ``before`` would remove (a dry run: writes nothing)."""
    m = outbound_messages
    query = select(func.count()).select_from(m).where(_prunable(before))
    return int(conn.execute(query).scalar_one())


def _chunks(items: list[int], size: int = 500) -> list[list[int]]:
    """Bounded ``IN`` lists: a page's deliveries grow with the number of destinations."""
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass(frozen=True)
class PruneBatch:
    seen: int  # messages looked at; 0: nothing is left past the cursor
    removed: int  # of those, deleted (with their deliveries and attempts)
    cursor: tuple[float, str] | None  # (created_at, id) of the last one seen: the next start


def prune_batch(
    conn: Connection, before: float, after: tuple[float, str] | None, limit: int
) -> PruneBatch:
    """One batch of retention, in the caller's (short) transaction: of the next ``limit``
    messages created before ``before`` past the keyset cursor ``after`` (in the order of
    ``ix_outbound_messages_created``), delete those whose every delivery was delivered (or that
    had none), each with its deliveries and their attempts; keep the others.

    Hazards and how they are avoided:
    - *A long transaction.* Only ``limit`` messages are looked at, kept ones included (filtering
      them in the query would let one statement scan months of failed messages under the
      writer lock); the caller commits and pauses between batches.
    - *A delivery that stops being delivered meanwhile* (``replay_message``: delivered → pending,
      or a new delivery of an old message). The page's messages are locked first (a new
      delivery's foreign key check waits for that lock), then the deliveries of those that
      look done, whose states are read again under that lock (an update waits): only a message
      whose every delivery is one of those, still delivered, is deleted. What is deleted is
      exactly what was checked (SQLite has one writer anyway). A delivery that becomes
      delivered meanwhile only keeps its message until the next run.
    - *A slow plan.* Deliveries are looked up by message id or by id only: with a condition on
      ``state`` too, SQLite (no statistics) walked the claim index over every delivered row.
    """
    d, m, a = outbound_deliveries, outbound_messages, outbound_attempts
    page = select(m.c.id, m.c.created_at).where(m.c.created_at < before)
    if after is not None:
        # The plain ``>= t`` bound keeps the query a range of the index: written only as
        # ``created_at > t OR (created_at = t AND id > last)``, SQLite took the OR apart and
        # sorted every remaining message for each batch (15 ms a batch at 50,000, growing).
        t, last_id = after
        page = page.where(m.c.created_at >= t, or_(m.c.created_at > t, m.c.id > last_id))
    rows = conn.execute(page.order_by(m.c.created_at, m.c.id).limit(limit).with_for_update()).all()
    if not rows:
        return PruneBatch(0, 0, after)
    ids = [r[0] for r in rows]
    kept: set[str] = set()
    deliveries: dict[int, str] = {}  # delivery id → message id, of the messages that look done
    for delivery_id, message_id, state in conn.execute(
        select(d.c.id, d.c.message_id, d.c.state).where(d.c.message_id.in_(ids))
    ):
        if state == "delivered":
            deliveries[delivery_id] = message_id
        else:
            kept.add(message_id)
    looked_done = [i for i in deliveries if deliveries[i] not in kept]
    for chunk in _chunks(looked_done):
        locked = select(d.c.id, d.c.state).where(d.c.id.in_(chunk)).with_for_update()
        kept.update(deliveries[i] for i, state in conn.execute(locked) if state != "delivered")
    doomed = [i for i in ids if i not in kept]
    removed = 0
    if doomed:
        # By the list of ids, not a subquery: PostgreSQL joined that against every attempt.
        for chunk in _chunks([i for i in looked_done if deliveries[i] not in kept]):
            conn.execute(delete(a).where(a.c.delivery_id.in_(chunk)))
        conn.execute(delete(d).where(d.c.message_id.in_(doomed)))
        removed = int(conn.execute(delete(m).where(m.c.id.in_(doomed))).rowcount or 0)
    return PruneBatch(len(rows), removed, (rows[-1][1], rows[-1][0]))
