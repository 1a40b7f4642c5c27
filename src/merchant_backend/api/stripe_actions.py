"""Actions that talk to Stripe: verify a data set, provision its webhook, take payments.

The SDK blocks, so each route hands its work to ``services.stripe_work``: it runs on the
Stripe bulkhead's own threads, bounded per merchant and in all, never in the thread pool that
reads and sign-in use; past the bound the answer is 429 with ``Retry-After`` at once. An
``UpstreamFailure`` becomes the API's error JSON with its status (``api/errors.py``: 402
decline, 502/504 Stripe unreachable or the request's time budget spent, 503 rate limited, ...).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response

from merchant_backend.api.auth import merchant_access, runtime
from merchant_backend.api.errors import not_found
from merchant_backend.runtime import Runtime
from merchant_backend.services import connection, payments, stripe_work
from merchant_backend.services.datasets import get_data_set
from merchant_backend.services.inputs import CancelBody, CaptureBody, PaymentIntentBody
from merchant_backend.stripe.payments import NewPayment
from merchant_backend.stripe.provision import ProvisionResult
from merchant_backend.validation import Env

router = APIRouter(prefix="/api/v1/merchants/{merchant_id}", tags=["talking to Stripe"])

EnvPath = Annotated[Env, Path(description="stage (Stripe test mode) or live")]
PaymentIntentId = Annotated[str, Path(max_length=255, pattern=r"^pi_[A-Za-z0-9_]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="passed to Stripe: a retried request with the same key is not repeated",
    ),
]


def _require_data_set(rt: Runtime, merchant_id: str, env: str) -> None:
    if get_data_set(rt, merchant_id, env) is None:
        raise not_found(f"no {env} data set for this merchant yet")


def _verify(rt: Runtime, merchant_id: str, env: Env) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return connection.verify_data_set(rt, merchant_id, env).as_json()


@router.post("/stripe/{env}/verify")
async def verify(
    env: EnvPath, merchant_id: str = Depends(merchant_access), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Check the data set against Stripe; the report is stored and shown in its health."""
    return await stripe_work.run(rt, merchant_id, _verify, rt, merchant_id, env)


def _provision(rt: Runtime, merchant_id: str, env: Env) -> ProvisionResult:
    _require_data_set(rt, merchant_id, env)
    return connection.provision_webhook(rt, merchant_id, env)


@router.post(
    "/stripe/{env}/webhook-endpoint",
    responses={201: {"description": "The endpoint was created (200: it existed, events added)."}},
)
async def webhook_endpoint(
    response: Response,
    env: EnvPath,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Create the webhook endpoint with the 15 events (201), or add missing ones (200)."""
    result = await stripe_work.run(rt, merchant_id, _provision, rt, merchant_id, env)
    if result.action == "created":
        response.status_code = 201
    return result.as_json()


def _create(
    rt: Runtime, merchant_id: str, env: Env, payment: NewPayment, key: str | None
) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return payments.create_payment(rt, merchant_id, env, payment, key).as_json()


@router.post("/{env}/payment-intents")
async def create_payment_intent(
    env: EnvPath,
    body: PaymentIntentBody,
    idempotency_key: IdempotencyKey = None,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Create a PaymentIntent (confirm it with ``confirm: true``); returns it as synced, with
    its ``client_secret`` and the environment's ``publishable_key``."""
    payment = NewPayment(
        amount=body.amount,
        currency=body.currency,
        customer=body.customer,
        payment_method=body.payment_method,
        capture_method=body.capture_method,
        description=body.description,
        metadata=body.metadata,
        confirm=body.confirm,
    )
    return await stripe_work.run(
        rt, merchant_id, _create, rt, merchant_id, env, payment, idempotency_key
    )


def _capture(
    rt: Runtime, merchant_id: str, env: Env, pi_id: str, amount: int | None, key: str | None
) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return payments.capture_payment(
        rt, merchant_id, env, pi_id, amount_to_capture=amount, idempotency_key=key
    ).as_json()


@router.post("/{env}/payment-intents/{pi_id}/capture")
async def capture_payment_intent(
    env: EnvPath,
    pi_id: PaymentIntentId,
    body: CaptureBody | None = None,
    idempotency_key: IdempotencyKey = None,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    amount = body.amount_to_capture if body else None
    return await stripe_work.run(
        rt, merchant_id, _capture, rt, merchant_id, env, pi_id, amount, idempotency_key
    )


def _cancel(
    rt: Runtime, merchant_id: str, env: Env, pi_id: str, reason: str | None, key: str | None
) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return payments.cancel_payment(
        rt, merchant_id, env, pi_id, cancellation_reason=reason, idempotency_key=key
    ).as_json()


@router.post("/{env}/payment-intents/{pi_id}/cancel")
async def cancel_payment_intent(
    env: EnvPath,
    pi_id: PaymentIntentId,
    body: CancelBody | None = None,
    idempotency_key: IdempotencyKey = None,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    reason = body.cancellation_reason if body else None
    return await stripe_work.run(
        rt, merchant_id, _cancel, rt, merchant_id, env, pi_id, reason, idempotency_key
    )
