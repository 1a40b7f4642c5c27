"""The inbox: every event we received or fetched, exactly as it came, and its processing state.

States: ``pending`` → ``processing`` (leased by a worker) → ``applied``; on an error
``failed`` (retried after a backoff) and finally ``dead`` (kept, replayable). Types we do not
handle are stored as ``ignored``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, and_, case, func, or_, select, update
from sqlalchemy.exc import OperationalError

from merchant_backend.errors import Conflict
from merchant_backend.store.schema import events
from merchant_backend.store.upsert import insert_for
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


@dataclass(frozen=True)
class NewEvent:
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
    if not items:
        return set()
    unique: dict[tuple[str, str, str], NewEvent] = {}
    for item in items:
        unique.setdefault((item.merchant_id, item.env, item.event_id), item)
    # In key order: two processes inserting the same events (a redelivery racing the first
    # delivery) in different orders would deadlock on the unique index on PostgreSQL.
    rows = [unique[key].row(received_at) for key in sorted(unique)]
    # Parameters apart from the statement: SQLAlchemy compiles it once and sends the rows as
    # multi-row VALUES ("insertmanyvalues"); inlined .values(rows) recompiled every batch.
    stmt = (
        insert_for(conn, events)
        .on_conflict_do_nothing(index_elements=["merchant_id", "env", "event_id"])
        .returning(events.c.merchant_id, events.c.env, events.c.event_id)
    )
    return {(r[0], r[1], r[2]) for r in conn.execute(stmt, rows)}


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


@dataclass(frozen=True)
class ClaimedEvent:
    id: int
    merchant_id: str
    env: str
    event_id: str
    type: str
    created: int
    payload: bytes
    attempts: int


def claim(
    conn: Connection, worker_id: str, *, now: float, lease_seconds: float, limit: int
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due events to this worker.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side; an
    expired lease (a worker that died) makes the event due again.
    """
    due = or_(
        and_(events.c.state.in_(("pending", "failed")), events.c.next_attempt_at <= now),
        and_(events.c.state == "processing", events.c.lease_until < now),
    )
    pick = select(events.c.id).where(due).order_by(events.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = [r[0] for r in conn.execute(pick)]
    if not ids:
        return []
    rows = conn.execute(
        update(events)
        .where(events.c.id.in_(ids))
        .values(
            state="processing",
            locked_by=worker_id,
            lease_until=now + lease_seconds,
            attempts=events.c.attempts + 1,
        )
        .returning(
            events.c.id,
            events.c.merchant_id,
            events.c.env,
            events.c.event_id,
            events.c.type,
            events.c.created,
            events.c.payload,
            events.c.attempts,
        )
    ).all()
    claimed = [ClaimedEvent(*r) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


def mark_applied(conn: Connection, ids: Sequence[int], worker_id: str, at: float) -> None:
    if ids:
        conn.execute(
            update(events)
            .where(events.c.id.in_(ids), events.c.locked_by == worker_id)
            .values(
                state="applied", applied_at=at, lease_until=None, locked_by=None, last_error=None
            )
        )


def mark_failed(
    conn: Connection, event_pk: int, worker_id: str, *, error: str, dead: bool, retry_at: float
) -> None:
    conn.execute(
        update(events)
        .where(events.c.id == event_pk, events.c.locked_by == worker_id)
        .values(
            state="dead" if dead else "failed",
            last_error=error[:2000],
            next_attempt_at=retry_at,
            lease_until=None,
            locked_by=None,
        )
    )


class EventPruned(Conflict):
    """The event's body was removed by retention: there is nothing left to apply."""

    code = "event_pruned"


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
        raise EventPruned(
            f"event {event_id}'s body was removed after the retention period "
            "(MERCHANT_BACKEND_EVENT_RETENTION_DAYS): there is nothing left to replay"
        )
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
    payload: bytes | None = None

    def as_json(self, with_payload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.event_id,
            "type": self.type,
            "created": self.created,
            "received_at": int(self.received_at),
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
