"""Plain row types the store writes, built by the layers above it. No SQL, no I/O.

They live here, not with the code that builds them, so that ``store/`` never imports upwards:
``sync.handlers`` turns an event into ``Snapshot``s, ``store.objects`` writes them.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Snapshot(NamedTuple):
    """One state of a Stripe object, as a projection row (``stripe_objects``). A named tuple,
    like the rows below: the worker makes one per event (a frozen dataclass's ``__init__`` costs
    three times as much)."""

    object_type: str
    stripe_id: str
    data: dict[str, Any]
    status: str | None
    customer_id: str | None
    parent_id: str | None
    amount: int | None
    currency: str | None
    created: int
    order_key: str
    event_id: str | None
    event_created: int
    event_type: str | None = None


class HistoryRow(NamedTuple):
    """An event applied to an object (``object_events``), fields in the table's column order.

    A tuple, not a dataclass: the worker makes one per event and hands its values to the driver
    as they are."""

    merchant_id: str
    env: str
    stripe_id: str
    event_id: str
    object_type: str
    event_type: str
    event_created: int
    applied_at: float
