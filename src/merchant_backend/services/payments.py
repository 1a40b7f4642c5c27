"""Take payments: create (and confirm), capture and cancel a PaymentIntent, and sync it.

What Stripe answers is written to the projection at once, as a snapshot without an event
(``event_created`` = now) under the same ordering rule as webhooks, so the webhook that follows
for the same change is a no-op (or replaces it with the same state). A declined PaymentIntent
is synced too, and named in the decline (``extra["payment_intent"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merchant_backend import clock
from merchant_backend.errors import UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, objects
from merchant_backend.store.objects import StoredObject
from merchant_backend.stripe import payments as stripe_payments
from merchant_backend.stripe.client import StripeConnection, connect
from merchant_backend.stripe.payments import NewPayment
from merchant_backend.sync.handlers import snapshot_of


@dataclass(frozen=True)
class PaymentResult:
    """The synced PaymentIntent (newer webhook state wins), plus what a checkout page needs."""

    payment: StoredObject
    client_secret: str | None
    publishable_key: str

    @property
    def id(self) -> str:
        return self.payment.stripe_id

    def as_json(self) -> dict[str, Any]:
        out = self.payment.as_json()
        out["client_secret"] = self.client_secret
        out["publishable_key"] = self.publishable_key
        return out


def sync_payment_intent(rt: Runtime, merchant_id: str, env: str, pi: dict[str, Any]) -> None:
    snap = snapshot_of(
        "payment_intent", pi, event_id=None, event_type=None, event_created=int(clock.now())
    )
    with db.write(rt.engine) as conn:
        objects.apply_snapshots(conn, merchant_id, env, [snap])


def _result(rt: Runtime, sc: StripeConnection, pi: dict[str, Any]) -> PaymentResult:
    sync_payment_intent(rt, sc.merchant_id, sc.env, pi)
    with db.read(rt.engine) as conn:
        stored = objects.get(conn, sc.merchant_id, sc.env, "payment_intent", str(pi["id"]))
    assert stored is not None
    client_secret = pi.get("client_secret")
    return PaymentResult(
        stored, client_secret if isinstance(client_secret, str) else None, sc.publishable_key
    )


def create_payment(
    rt: Runtime,
    merchant_id: str,
    env: str,
    payment: NewPayment,
    idempotency_key: str | None = None,
) -> PaymentResult:
    """Create (and with ``confirm``, confirm) a PaymentIntent; ``UpstreamFailure`` of kind
    ``declined`` on a decline, after the declined PaymentIntent is synced."""
    sc = connect(rt, merchant_id, env)
    try:
        pi = stripe_payments.create(sc, payment, idempotency_key)
    except UpstreamFailure as failure:
        declined = failure.payment_intent if failure.kind == "declined" else None
        if declined is not None and "payment_intent" in failure.extra:
            sync_payment_intent(rt, merchant_id, env, declined)
        failure.payment_intent = None
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
) -> PaymentResult:
    sc = connect(rt, merchant_id, env)
    params = {} if amount_to_capture is None else {"amount_to_capture": amount_to_capture}
    return _result(rt, sc, stripe_payments.act(sc, pi_id, "capture", params, idempotency_key))


def cancel_payment(
    rt: Runtime,
    merchant_id: str,
    env: str,
    pi_id: str,
    *,
    cancellation_reason: str | None = None,
    idempotency_key: str | None = None,
) -> PaymentResult:
    sc = connect(rt, merchant_id, env)
    params = {} if cancellation_reason is None else {"cancellation_reason": cancellation_reason}
    return _result(rt, sc, stripe_payments.act(sc, pi_id, "cancel", params, idempotency_key))
