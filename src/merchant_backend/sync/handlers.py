"""What each of the 15 events means for our projections: event in, snapshots out. Pure.

A handler names the objects an event carries; the ordering rule (``sync.ordering``) and the
store decide whether each snapshot is newer than what is kept. An object first seen through a
later event is simply created from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from merchant_backend.store.rows import Snapshot
from merchant_backend.sync.ordering import order_key


class EventNotUnderstood(Exception):
    """The event's data.object does not have the shape its type promises."""


def _id_of(value: Any) -> str | None:
    """Stripe fields like ``customer`` hold an id, or the object when expanded."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def snapshot_of(
    object_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None,
    event_type: str | None,
    event_created: int,
    parent_id: str | None = None,
) -> Snapshot:
    stripe_id = obj.get("id")
    if not isinstance(stripe_id, str) or not stripe_id:
        raise EventNotUnderstood(f"{object_type} in the event has no id")
    status = obj.get("status")
    created = _int_or_none(obj.get("created"))
    currency = obj.get("currency")
    return Snapshot(
        object_type=object_type,
        stripe_id=stripe_id,
        data=obj,
        status=status if isinstance(status, str) else None,
        customer_id=_id_of(obj.get("customer")),
        parent_id=parent_id,
        amount=_int_or_none(obj.get("amount")),
        currency=currency if isinstance(currency, str) else None,
        created=created if created is not None else event_created,
        order_key=order_key(object_type, obj, event_created, event_type, event_id),
        event_id=event_id,
        event_created=event_created,
        event_type=event_type,
    )


Handler = Callable[[dict[str, Any]], list[Snapshot]]


def _obj(event: dict[str, Any], *expected: str) -> dict[str, Any]:
    obj = event["data"]["object"]
    if expected and obj.get("object") not in expected:
        raise EventNotUnderstood(
            f"{event['type']} carries a {obj.get('object')!r}, expected {' or '.join(expected)}"
        )
    return obj  # type: ignore[no-any-return]


def _simple(object_type: str, *stripe_objects: str) -> Handler:
    def handle(event: dict[str, Any]) -> list[Snapshot]:
        obj = _obj(event, *stripe_objects)
        return [
            snapshot_of(
                object_type,
                obj,
                event_id=event["id"],
                event_type=event["type"],
                event_created=event["created"],
            )
        ]

    return handle


def _dispute(event: dict[str, Any]) -> list[Snapshot]:
    obj = _obj(event, "dispute")
    parent = _id_of(obj.get("payment_intent")) or _id_of(obj.get("charge"))
    return [
        snapshot_of(
            "dispute",
            obj,
            event_id=event["id"],
            event_type=event["type"],
            event_created=event["created"],
            parent_id=parent,
        )
    ]


HANDLERS: dict[str, Handler] = {
    "account.updated": _simple("account", "account"),
    "customer.updated": _simple("customer", "customer"),
    # A stored card (or legacy source) of a customer: kept with the payment methods.
    "customer.source.updated": _simple("payment_method", "card", "source", "bank_account"),
    "payment_method.automatically_updated": _simple("payment_method", "payment_method"),
    **{
        f"payment_intent.{t}": _simple("payment_intent", "payment_intent")
        for t in (
            "amount_capturable_updated",
            "canceled",
            "created",
            "payment_failed",
            "processing",
            "succeeded",
        )
    },
    **{
        f"charge.dispute.{t}": _dispute
        for t in ("closed", "created", "funds_reinstated", "funds_withdrawn", "updated")
    },
}


def snapshots_for(event: dict[str, Any]) -> list[Snapshot]:
    """The snapshots an event carries; [] for a type we do not sync."""
    handler = HANDLERS.get(event.get("type", ""))
    if handler is None:
        return []
    try:
        return handler(event)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EventNotUnderstood(f"{event.get('type')} event is malformed: {exc!r}") from exc


def dispute_funds(obj: dict[str, Any]) -> dict[str, int]:
    """Money taken for and returned after a dispute, from its balance transactions.

    ``amount_withdrawn``/``amount_reinstated`` are the gross amounts (a transaction's
    ``amount``: negative when taken, positive when given back), so they match the dispute's
    ``amount``; Stripe's dispute fee shows in ``fee`` and everything together in ``net``.
    """
    withdrawn = reinstated = fee = net = 0
    for txn in obj.get("balance_transactions") or []:
        if not isinstance(txn, dict):
            continue  # an unexpanded id says nothing about money
        amount = txn.get("amount")
        if not isinstance(amount, int):
            continue
        if amount < 0:
            withdrawn += -amount
        else:
            reinstated += amount
        txn_fee, txn_net = txn.get("fee"), txn.get("net")
        fee += txn_fee if isinstance(txn_fee, int) else 0
        net += txn_net if isinstance(txn_net, int) else amount
    return {
        "amount_withdrawn": withdrawn,
        "amount_reinstated": reinstated,
        "fee": fee,
        "net": net,
    }
