"""Which of two snapshots of a Stripe object is newer. Pure functions; this is the rule.

Stripe delivers events at least once and in no guaranteed order, so the projection of an
object keeps the snapshot with the greatest *order key* and ignores the rest. Because the
result is a maximum, it is the same for every order and every number of repeats.

The key compares, in this order:

1. the event's ``created`` (Stripe's clock, whole seconds);
2. the rank of the object's status: later lifecycle stages outrank earlier ones, terminal
   statuses (``succeeded``/``canceled``; a dispute's ``won``/``lost``/``warning_closed``)
   outrank everything — this only decides between events of the same second;
3. progress that only grows: the number of a dispute's balance transactions (withdrawn, then
   reinstated), a payment intent's ``amount_received``;
4. the rank of the event type (e.g. ``charge.dispute.funds_reinstated`` after ``closed``);
5. the event id, only so that the result is deterministic.

A snapshot from our own API call (no event) has an empty event id, so an event of the same
second and rank, which carries the same state, replaces it.

Limit: within one second, a lifecycle that goes *back* (a payment failing again after
``processing``) cannot be told apart from a late delivery; the higher rank wins there.
"""

from __future__ import annotations

from typing import Any

from merchant_backend.vocabulary import EVENT_TYPE_RANK, STATUS_RANKS


def status_rank(object_type: str, status: str | None) -> int:
    ranks = STATUS_RANKS.get(object_type)
    if ranks is None or status is None:
        return 0
    return ranks.get(status, 0)


def progress(object_type: str, obj: dict[str, Any]) -> int:
    if object_type == "dispute":
        txns = obj.get("balance_transactions")
        return len(txns) if isinstance(txns, list) else 0
    if object_type == "payment_intent":
        received = obj.get("amount_received")
        return received if isinstance(received, int) and received >= 0 else 0
    return 0


def order_key(
    object_type: str,
    obj: dict[str, Any],
    event_created: int,
    event_type: str | None,
    event_id: str | None,
) -> str:
    """Text that sorts like the rule above (fixed-width numbers, then the id)."""
    status = obj.get("status")
    return "{:012d}|{:02d}|{:015d}|{:02d}|{}".format(
        max(event_created, 0),
        status_rank(object_type, status if isinstance(status, str) else None),
        min(progress(object_type, obj), 10**15 - 1),
        EVENT_TYPE_RANK.get(event_type or "", 0),
        event_id or "",
    )
