"""Actions that talk to Stripe: verify a data set, provision its webhook, take payments.

The SDK blocks, so each route hands its work to ``services.stripe_work``: it runs on the
Stripe bulkhead's own threads, bounded per merchant and in all, never in the thread pool that
reads and sign-in use; past the bound the answer is 429 with ``Retry-After`` at once. A
``StripeProblem`` becomes the API's error JSON with its status (402 decline, 502/504 Stripe
unreachable or the request's time budget spent, 503 rate limited, ...).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, Response
from fastapi.responses import JSONResponse

from merchant_backend.api.auth import merchant_access, runtime
from merchant_backend.api.errors import ERROR_RESPONSES, not_found
from merchant_backend.runtime import Runtime
from merchant_backend.services import stripe_work
from merchant_backend.services.inputs import CancelBody, CaptureBody, PaymentIntentBody
from merchant_backend.store import datasets, db
from merchant_backend.stripe.errors import StripeProblem
from merchant_backend.stripe.payments import (
    NewPayment,
    cancel_payment,
    capture_payment,
    create_payment,
)
from merchant_backend.stripe.provision import provision_webhook
from merchant_backend.stripe.verify import verify_connection
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
    with db.read(rt.engine) as conn:
        if datasets.get(conn, merchant_id, env) is None:
            raise not_found(f"no {env} data set for this merchant yet")


def _verify(rt: Runtime, merchant_id: str, env: Env) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return verify_connection(rt, merchant_id, env)


@router.post("/stripe/{env}/verify")
async def verify(
    env: EnvPath, merchant_id: str = Depends(merchant_access), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Check the data set against Stripe; the report is stored and shown in its health."""
    return await stripe_work.run(rt, merchant_id, _verify, rt, merchant_id, env)


def _provision(rt: Runtime, merchant_id: str, env: Env) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return provision_webhook(rt, merchant_id, env)


@router.post(
    "/stripe/{env}/webhook-endpoint",
    responses={201: {"description": "The endpoint was created (200: it existed, events added)."}},
)
async def webhook_endpoint(
    request: Request,
    response: Response,
    env: EnvPath,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Create the webhook endpoint with the 15 events (201), or add missing ones (200)."""
    result = await stripe_work.run(rt, merchant_id, _provision, rt, merchant_id, env)
    request.app.state.secret_cache.invalidate(merchant_id, env)
    if result["action"] == "created":
        response.status_code = 201
    return result


def _create(
    rt: Runtime, merchant_id: str, env: Env, payment: NewPayment, key: str | None
) -> dict[str, Any]:
    _require_data_set(rt, merchant_id, env)
    return create_payment(rt, merchant_id, env, payment, key)


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
    return capture_payment(
        rt, merchant_id, env, pi_id, amount_to_capture=amount, idempotency_key=key
    )


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
    return cancel_payment(
        rt, merchant_id, env, pi_id, cancellation_reason=reason, idempotency_key=key
    )


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


def install(app: FastAPI) -> None:
    """Add the routes and the StripeProblem → JSON error mapping."""

    @app.exception_handler(StripeProblem)
    async def _stripe_problem(_request: Request, exc: StripeProblem) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status)

    app.include_router(router, responses=ERROR_RESPONSES)
