"""What fits in the columns an event and its objects are stored in. Pure: no I/O.

A value the database would refuse (an integer past 64 bits, a string longer than its column, a
NUL byte, which PostgreSQL's text types cannot hold) must be refused before it reaches the
database: the inbox commits many merchants' events together, and one refused row would fail
them all. The lengths are read from the schema, so a migration that widens a column widens the
check with it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Column, String

from merchant_backend.store.schema import events, stripe_objects

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Stripe began in 2010; a ``created`` outside 2001-09-09 … 2100-01-01 is not a Stripe event's.
EARLIEST_CREATED = 1_000_000_000
LATEST_CREATED = 4_102_444_800

# C0 controls and DEL: no id, type or status of Stripe's carries one, NUL cannot be stored in
# PostgreSQL text, and a line break would forge a line in the console log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def length_of(column: Column[Any]) -> int:
    kind = column.type
    assert isinstance(kind, String) and kind.length is not None, column
    return kind.length


EVENT_ID = length_of(events.c.event_id)
EVENT_TYPE = length_of(events.c.type)
OBJECT_TYPE = length_of(events.c.object_type)
OBJECT_ID = length_of(events.c.object_id)
STATUS = length_of(stripe_objects.c.status)
CURRENCY = length_of(stripe_objects.c.currency)
RELATED_ID = length_of(stripe_objects.c.customer_id)


def text_fits(value: str, limit: int) -> bool:
    """``text_problem(value, limit) is None``, at the cost of the webhook's hot path: a printable
    string (nearly every value Stripe sends) has no control character, and ``isprintable`` is a
    third of the regex's cost."""
    return len(value) <= limit and (value.isprintable() or _CONTROL.search(value) is None)


def text_problem(value: str, limit: int) -> str | None:
    """Why ``value`` cannot go into a string column of ``limit`` characters, or None."""
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if _CONTROL.search(value):
        return "contains a control character"
    return None


def int_problem(value: int) -> str | None:
    """Why ``value`` cannot go into a BIGINT column, or None."""
    if not INT64_MIN <= value <= INT64_MAX:
        return "does not fit in 64 bits"
    return None


def created_problem(value: int) -> str | None:
    """Why ``value`` is not a plausible Unix time of a Stripe event, or None."""
    if not EARLIEST_CREATED <= value <= LATEST_CREATED:
        return f"is not a Unix time between {EARLIEST_CREATED} and {LATEST_CREATED}"
    return None
