"""An object's events that are not applied (yet): the open end of a payment's timeline.

Filtered by object id without an ORDER BY in SQL, so the planner takes the object index
(merchant, env, object_id) instead of walking the merchant's whole newest-first list; an
object has few events, sorting them here costs nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from merchant_backend.store.inbox import ENTRY_COLUMNS, InboxEntry
from merchant_backend.store.schema import events


def unapplied_for_object(
    conn: Connection, merchant_id: str, env: str, object_id: str, limit: int = 100
) -> list[InboxEntry]:
    """Pending, processing, failed and dead events of one object, oldest first."""
    rows = conn.execute(
        select(*ENTRY_COLUMNS)
        .where(
            events.c.merchant_id == merchant_id,
            events.c.env == env,
            events.c.object_id == object_id,
            events.c.state.not_in(("applied", "ignored")),
        )
        .limit(limit)
    ).all()
    entries = [InboxEntry(**r._mapping) for r in rows]
    entries.sort(key=lambda e: (e.created, e.id))
    return entries
