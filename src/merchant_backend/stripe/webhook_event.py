"""Is this body a Stripe event that belongs to this data set? Pure checks, no I/O."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from merchant_backend.errors import EventRejected
from merchant_backend.store import limits
from merchant_backend.vocabulary import HANDLED_SET


class IncomingEvent(NamedTuple):
    """Immutable; a named tuple because one is built per delivery (a third of a frozen
    dataclass's cost)."""

    event_id: str
    type: str
    created: int
    livemode: bool
    account: str | None
    object_type: str | None
    object_id: str | None

    @property
    def handled(self) -> bool:
        return self.type in HANDLED_SET


def _reject(message: str) -> EventRejected:
    return EventRejected("not_an_event", message)


def _text(value: Any, what: str, limit: int) -> str | None:
    """``value`` if it is a string that fits its column; None if it is not a string."""
    if type(value) is not str:
        return None
    if not limits.text_fits(value, limit):
        raise _reject(f"{what} {limits.text_problem(value, limit)}")
    return value


def _id_of(value: Any) -> Any:
    """Stripe fields like ``customer`` hold an id, or the object when expanded."""
    return value.get("id") if type(value) is dict else value


def _check_object(obj: dict[str, Any]) -> None:
    """The values of a handled event's object that the projections store in their own columns
    (see ``sync.handlers.snapshot_of``) fit those columns."""
    _text(obj.get("status"), "data.object.status", limits.STATUS)
    _text(obj.get("currency"), "data.object.currency", limits.CURRENCY)
    for key in ("customer", "payment_intent", "charge"):
        _text(_id_of(obj.get(key)), f"data.object.{key}", limits.RELATED_ID)
    _check_int(obj.get("amount"), "data.object.amount")
    _check_int(obj.get("created"), "data.object.created", "a Unix time")
    transactions = obj.get("balance_transactions")
    if type(transactions) is list:  # a dispute's, summed by ``sync.handlers.dispute_funds``
        for txn in transactions:
            if type(txn) is dict:
                for key in ("amount", "fee", "net"):
                    _check_int(txn.get(key), f"data.object.balance_transactions[].{key}")


def _check_int(value: Any, what: str, kind: str = "minor units") -> None:
    """Money is an integer of minor units, or absent: never a fraction, a string or a flag;
    so is a time (``kind`` says which, for the message).

    orjson reads an integer past 2**64 - 1 as a float, so "beyond 64 bits" lands here too;
    without this check the projection would store no amount rather than refuse the event.
    """
    if value is None:
        return
    if type(value) is not int:  # bool is a subclass of int, not this type
        raise _reject(f"{what} must be an integer ({kind}, 64 bits)")
    problem = limits.int_problem(value)
    if problem is not None:
        raise _reject(f"{what} {problem}")


def parse_event(body: bytes) -> IncomingEvent:
    """The event in ``body``, if it is one and every value we store from it fits its column.

    Anything else is refused here, alone, with a reason: never by the database in a group
    commit that other merchants' events share (issue 9). On the webhook's hot path: exact
    ``type(...) is`` checks where a JSON value can only be the built-in type (orjson makes no
    subclasses), and no per-field objects.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _reject("body is not JSON") from exc
    if type(doc) is not dict or doc.get("object") != "event":
        raise _reject('body is not a Stripe event (object must be "event")')
    event_id, type_, created = doc.get("id"), doc.get("type"), doc.get("created")
    if type(event_id) is not str or not event_id.startswith("evt_"):
        raise _reject("event id must be a string starting with evt_")
    _text(event_id, "event id", limits.EVENT_ID)
    if type(type_) is not str or not type_:
        raise _reject("event type is missing")
    _text(type_, "event type", limits.EVENT_TYPE)
    if type(created) is not int:
        raise _reject("event created must be a unix timestamp")
    problem = limits.created_problem(created)
    if problem is not None:
        raise _reject(f"event created {problem}")
    data = doc.get("data")
    obj = data.get("object") if type(data) is dict else None
    if type(obj) is not dict:
        raise _reject("event has no data.object")
    livemode = doc.get("livemode")
    if type(livemode) is not bool:
        raise _reject("event livemode must be true or false")
    account = doc.get("account")
    if account is not None and type(account) is not str:
        raise _reject("event account must be a string")
    obj_type = _text(obj.get("object"), "data.object.object", limits.OBJECT_TYPE)
    obj_id = _text(obj.get("id"), "data.object.id", limits.OBJECT_ID)
    if type_ in HANDLED_SET:
        _check_object(obj)
    return IncomingEvent(event_id, type_, created, livemode, account, obj_type, obj_id)


def check_belongs(event: IncomingEvent, env: str, account_id: str) -> None:
    """Stage takes only test-mode events, live only live ones, and only for our account."""
    if event.livemode != (env == "live"):
        raise EventRejected(
            "livemode_mismatch",
            f"a {'live' if event.livemode else 'test'}-mode event was sent to the {env} "
            "endpoint: the webhook is registered in the wrong Stripe mode",
        )
    if event.account is not None and event.account != account_id:
        raise EventRejected(
            "account_mismatch",
            "the event belongs to another Stripe account than this data set's account id",
        )
