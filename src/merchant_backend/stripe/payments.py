"""Take payments with a merchant's connection: create, capture and cancel PaymentIntents.

What Stripe answers is written to the projection at once, as a snapshot without an event
(``event_created`` = now) under the same ordering rule as webhooks, so the webhook that follows
for the same change is a no-op (or replaces it with the same state). Optional parameters are
sent only when the caller gave them.

An answer Stripe replays for a repeated Idempotency-Key is the state of back then: it is not
written as news (it could be older than a webhook since); the PaymentIntent is read afresh.

A confirming create is two requests (create, then confirm): the PaymentIntent's id is known
before the card can be declined, so a declined PaymentIntent is synced even when the decline
error does not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from merchant_backend import clock
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, objects
from merchant_backend.stripe.client import StripeConnection, as_json, connect, post_options
from merchant_backend.stripe.errors import StripeProblem, is_replay
from merchant_backend.sync.handlers import snapshot_of


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


def sync_payment_intent(rt: Runtime, merchant_id: str, env: str, pi: dict[str, Any]) -> None:
    snap = snapshot_of(
        "payment_intent", pi, event_id=None, event_type=None, event_created=int(clock.now())
    )
    with db.write(rt.engine) as conn:
        objects.apply_snapshots(conn, merchant_id, env, [snap])


def _result(rt: Runtime, sc: StripeConnection, pi: dict[str, Any]) -> dict[str, Any]:
    """The synced PaymentIntent (newer webhook state wins), plus what a checkout page needs."""
    sync_payment_intent(rt, sc.merchant_id, sc.env, pi)
    with db.read(rt.engine) as conn:
        stored = objects.get(conn, sc.merchant_id, sc.env, "payment_intent", str(pi["id"]))
    assert stored is not None
    out = stored.as_json()
    out["client_secret"] = pi.get("client_secret")
    out["publishable_key"] = sc.publishable_key
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


def _declined(
    rt: Runtime, sc: StripeConnection, problem: StripeProblem, pi_id: str
) -> StripeProblem:
    """Sync the declined PaymentIntent (from the error, else fetched) and name it."""
    pi = None if problem.replayed else problem.payment_intent
    if not isinstance(pi, dict) or pi.get("id") != pi_id:
        try:
            pi = as_json(
                sc.call(
                    "payment_intents.retrieve",
                    "read the declined payment",
                    lambda: sc.client.v1.payment_intents.retrieve(pi_id),
                )
            )
        except StripeProblem:
            pi = None  # the decline is the news; the webhook will sync the rest
    if pi is not None:
        sync_payment_intent(rt, sc.merchant_id, sc.env, pi)
    problem.extra["payment_intent"] = pi_id
    problem.payment_intent = None
    return problem


def create_payment(
    rt: Runtime,
    merchant_id: str,
    env: str,
    payment: NewPayment,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Create (and with ``confirm``, confirm) a PaymentIntent; 402 StripeProblem on decline.

    The caller's idempotency key goes to Stripe for the create, and a key derived from it for
    the confirm, so a retried request replays both answers instead of charging twice.
    """
    sc = connect(rt, merchant_id, env)
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
        except StripeProblem as problem:
            if problem.status == 402:
                raise _declined(rt, sc, problem, pi_id) from None
            raise
    return _result(rt, sc, pi)


def capture_payment(
    rt: Runtime,
    merchant_id: str,
    env: str,
    pi_id: str,
    *,
    amount_to_capture: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    params = {} if amount_to_capture is None else {"amount_to_capture": amount_to_capture}
    return _act(rt, merchant_id, env, pi_id, "capture", params, idempotency_key)


def cancel_payment(
    rt: Runtime,
    merchant_id: str,
    env: str,
    pi_id: str,
    *,
    cancellation_reason: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    params = {} if cancellation_reason is None else {"cancellation_reason": cancellation_reason}
    return _act(rt, merchant_id, env, pi_id, "cancel", params, idempotency_key)


def _act(
    rt: Runtime,
    merchant_id: str,
    env: str,
    pi_id: str,
    action: Literal["capture", "cancel"],
    params: dict[str, Any],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Capture or cancel one PaymentIntent and sync the answer."""
    sc = connect(rt, merchant_id, env)
    options = post_options(idempotency_key)
    method = getattr(sc.client.v1.payment_intents, action)
    pi = sc.call(
        f"payment_intents.{action}",
        f"{action} {pi_id}",
        lambda: method(pi_id, params=params or None, options=options),
    )
    return _result(rt, sc, _answer(sc, pi))
