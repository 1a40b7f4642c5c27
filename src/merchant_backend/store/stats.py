"""Figures for the overview page: the newest event and per-day counts and volumes.

Days are UTC days counted from the epoch and taken from Stripe's own ``created`` times, so both
queries walk the (merchant, env, …, created) list indexes instead of scanning the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from merchant_backend.store.schema import events, stripe_objects

DAY = 86400


@dataclass(frozen=True)
class LastEvent:
    event_id: str
    type: str
    created: int
    received_at: float
    state: str


def last_event(conn: Connection, merchant_id: str, env: str) -> LastEvent | None:
    """The newest event by Stripe's ``created`` (then by arrival)."""
    row = conn.execute(
        select(
            events.c.event_id, events.c.type, events.c.created, events.c.received_at, events.c.state
        )
        .where(events.c.merchant_id == merchant_id, events.c.env == env)
        .order_by(events.c.created.desc(), events.c.id.desc())
        .limit(1)
    ).first()
    return LastEvent(*row) if row else None


def events_per_day(conn: Connection, merchant_id: str, env: str, since: int) -> dict[int, int]:
    """Day number -> how many events Stripe created that day (from ``since`` on)."""
    day = (events.c.created // DAY).label("day")
    rows = conn.execute(
        select(day, func.count())
        .where(events.c.merchant_id == merchant_id, events.c.env == env)
        .where(events.c.created >= since)
        .group_by(day)
    )
    return {int(r[0]): int(r[1]) for r in rows}


def payment_volume_per_day(
    conn: Connection, merchant_id: str, env: str, since: int
) -> dict[str, dict[int, int]]:
    """Currency -> day number -> sum of succeeded payment intents created that day."""
    day = (stripe_objects.c.created // DAY).label("day")
    rows = conn.execute(
        select(stripe_objects.c.currency, day, func.sum(stripe_objects.c.amount))
        .where(
            stripe_objects.c.merchant_id == merchant_id,
            stripe_objects.c.env == env,
            stripe_objects.c.object_type == "payment_intent",
            stripe_objects.c.created >= since,
            stripe_objects.c.status == "succeeded",
            stripe_objects.c.currency.is_not(None),
        )
        .group_by(stripe_objects.c.currency, day)
    )
    out: dict[str, dict[int, int]] = {}
    for currency, d, total in rows:
        out.setdefault(str(currency), {})[int(d)] = int(total or 0)
    return out
