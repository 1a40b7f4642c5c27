"""PaymentIntents through a merchant's connection: create (and confirm), capture, cancel.

These functions speak to Stripe and return the PaymentIntent as Stripe sent it; the use case
(``services.payments``) writes it to the projection. Optional parameters are sent only when
the caller gave them.

An answer Stripe replays for a repeated Idempotency-Key is the state of back then: it is not
returned as news (it could be older than a webhook since); the PaymentIntent is read afresh.

A confirming create is two requests (create, then confirm): the PaymentIntent's id is known
before the card can be declined, so a declined PaymentIntent can be synced even when the
decline error does not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from merchant_backend.errors import UpstreamFailure
from merchant_backend.stripe.client import StripeConnection, as_json, post_options
from merchant_backend.stripe.errors import is_replay


@dataclass(frozen=True)
class NewPayment:
    amount: int
    currency: str
    customer: str | None = None
    payment_method: str | None = None
    capture_method: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = field(default=None)
    confirm: bool = False

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"amount": self.amount, "currency": self.currency.lower()}
        optional = {
            "customer": self.customer,
            "payment_method": self.payment_method,
            "capture_method": self.capture_method,
            "description": self.description,
            "metadata": self.metadata,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


def _answer(sc: StripeConnection, obj: Any) -> dict[str, Any]:
    """What Stripe answered, or the PaymentIntent as it is now if the answer was a replay."""
    response = getattr(obj, "last_response", None)
    if not is_replay(getattr(response, "headers", None)):
        return as_json(obj)
    pi_id = str(obj["id"])
    return as_json(
        sc.call(
            "payment_intents.retrieve",
            f"read {pi_id}",
            lambda: sc.client.v1.payment_intents.retrieve(pi_id),
        )
    )


def _declined(sc: StripeConnection, failure: UpstreamFailure, pi_id: str) -> UpstreamFailure:
    """Name the declined PaymentIntent, and attach it as it is now (from the error, else
    fetched; None if Stripe cannot say) for the caller to sync."""
    pi = None if failure.replayed else failure.payment_intent
    if not isinstance(pi, dict) or pi.get("id") != pi_id:
        try:
            pi = as_json(
                sc.call(
                    "payment_intents.retrieve",
                    "read the declined payment",
                    lambda: sc.client.v1.payment_intents.retrieve(pi_id),
                )
            )
        except UpstreamFailure:
            pi = None  # the decline is the news; the webhook will sync the rest
    failure.extra["payment_intent"] = pi_id
    failure.payment_intent = pi
    return failure


def create(
    sc: StripeConnection, payment: NewPayment, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Create (and with ``confirm``, confirm) a PaymentIntent; a decline raises
    ``UpstreamFailure`` of kind ``declined`` carrying the declined PaymentIntent.

    The caller's idempotency key goes to Stripe for the create, and a key derived from it for
    the confirm, so a retried request replays both answers instead of charging twice.
    """
    create_options = post_options(idempotency_key)
    confirm_options = post_options(f"{create_options['idempotency_key']}:confirm")
    params = payment.params()
    pi = _answer(
        sc,
        sc.call(
            "payment_intents.create",
            "create the payment",
            lambda: sc.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options=create_options,  # type: ignore[arg-type]
            ),
        ),
    )
    if payment.confirm:
        # Not synced before the confirm: within one second the ordering rule would rank the
        # unconfirmed state above a decline (requires_payment_method) and keep it.
        pi_id = str(pi["id"])
        try:
            pi = _answer(
                sc,
                sc.call(
                    "payment_intents.confirm",
                    "confirm the payment",
                    lambda: sc.client.v1.payment_intents.confirm(
                        pi_id,
                        options=confirm_options,  # type: ignore[arg-type]
                    ),
                ),
            )
        except UpstreamFailure as failure:
            if failure.kind == "declined":
                raise _declined(sc, failure, pi_id) from None
            raise
    return pi


def act(
    sc: StripeConnection,
    pi_id: str,
    action: Literal["capture", "cancel"],
    params: dict[str, Any],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Capture or cancel one PaymentIntent; the PaymentIntent as it is now."""
    options = post_options(idempotency_key)
    method = getattr(sc.client.v1.payment_intents, action)
    pi = sc.call(
        f"payment_intents.{action}",
        f"{action} {pi_id}",
        lambda: method(pi_id, params=params or None, options=options),
    )
    return _answer(sc, pi)
