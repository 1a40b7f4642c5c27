"""Is this body a Stripe event that belongs to this data set? Pure checks, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from merchant_backend.stripe.events import HANDLED_SET
from merchant_backend.stripe.signature import SignatureRejected


@dataclass(frozen=True)
class IncomingEvent:
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


def _reject(message: str) -> SignatureRejected:
    return SignatureRejected("not_an_event", message)


def parse_event(body: bytes) -> tuple[IncomingEvent, dict[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _reject("body is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("object") != "event":
        raise _reject('body is not a Stripe event (object must be "event")')
    event_id, type_, created = doc.get("id"), doc.get("type"), doc.get("created")
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        raise _reject("event id must be a string starting with evt_")
    if not isinstance(type_, str) or not type_ or len(type_) > 120:
        raise _reject("event type is missing")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise _reject("event created must be a unix timestamp")
    data = doc.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise _reject("event has no data.object")
    livemode = doc.get("livemode")
    if not isinstance(livemode, bool):
        raise _reject("event livemode must be true or false")
    account = doc.get("account")
    if account is not None and not isinstance(account, str):
        raise _reject("event account must be a string")
    obj_type, obj_id = obj.get("object"), obj.get("id")
    return (
        IncomingEvent(
            event_id=event_id,
            type=type_,
            created=created,
            livemode=livemode,
            account=account,
            object_type=obj_type if isinstance(obj_type, str) else None,
            object_id=obj_id if isinstance(obj_id, str) else None,
        ),
        doc,
    )


def check_belongs(event: IncomingEvent, env: str, account_id: str) -> None:
    """Stage takes only test-mode events, live only live ones, and only for our account."""
    if event.livemode != (env == "live"):
        raise SignatureRejected(
            "livemode_mismatch",
            f"a {'live' if event.livemode else 'test'}-mode event was sent to the {env} "
            "endpoint: the webhook is registered in the wrong Stripe mode",
        )
    if event.account is not None and event.account != account_id:
        raise SignatureRejected(
            "account_mismatch",
            "the event belongs to another Stripe account than this data set's account id",
        )
