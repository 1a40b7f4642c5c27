"""Payments: the list, a payment's page, and taking payments from the browser (a new payment,
capture, cancel).

The actions call the payment use cases (``services.payments``), which sync what Stripe answers
to the projection, so the payment's page shows it right after. Every form carries an
idempotency key made when the form was shown, so a second click or a reload sends the same
request to Stripe instead of a new one.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import i18n, logs, money
from merchant_backend.errors import FieldError, UpstreamFailure
from merchant_backend.i18n import gettext as _
from merchant_backend.services import payments, reads
from merchant_backend.stripe.payments import NewPayment
from merchant_backend.vocabulary import CANCELABLE, CAPTURABLE, PAYMENT_INTENT_STATUSES
from merchant_backend.web import action_forms, decline_messages, paging, stripe_pages
from merchant_backend.web.format import Failure
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.outcomes import failure_status, needs_data_set, problem_of
from merchant_backend.web.render import WebRoute, not_found, page, redirect, redirect_with
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page

log = logs.get("merchant_backend.web")


def _notice(marked: str | None) -> str | None:
    return _(marked) if marked else None


router = APIRouter(route_class=WebRoute, include_in_schema=False)

CAPTURE_METHODS = ("automatic", "manual")
EXAMPLE_CURRENCY = money.CURRENCIES["eur"]


@router.get("/m/{merchant_id}/{env}/payments")
def payment_list(
    request: Request,
    status: str | None = None,
    customer: str | None = None,
    starting_after: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    filters = {"status": paging.opt(status, 40), "customer": paging.opt(customer)}
    items, more = paging.object_page(
        mp, "payment_intent", starting_after, filters["status"], filters["customer"]
    )
    context = merchant_frame(
        mp,
        "/payments",
        title=f"{_('Payments')} · {mp.env}",
        items=items,
        filters=filters,
        statuses=PAYMENT_INTENT_STATUSES,
        **paging.paging(
            f"{mp.base}/payments", filters, starting_after, paging.last_id(items, more)
        ),
    )
    return page(request, "payments.html", context)


# ---------------------------------------------------------------- a new payment
# Registered before the payment's page: /payments/new is not a payment id.


def _new_form(
    request: Request,
    mp: MerchantPage,
    *,
    submitted: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
    problem: str | None = None,
    problem_detail: str | None = None,
    declined: Failure | None = None,
    declined_id: str | None = None,
    status_code: int = 200,
) -> Response:
    context = merchant_frame(
        mp,
        "/payments",
        title=f"{_('New payment')} · {mp.env}",
        # Stripe's test card is a handy default in test mode only.
        form=submitted
        or {
            "capture_method": "automatic",
            "payment_method": "pm_card_visa" if mp.env == "stage" else "",
        },
        errors={e.field: e.message for e in errors or []},
        capture_methods=CAPTURE_METHODS,
        amount_examples=money.examples(EXAMPLE_CURRENCY, i18n.reader().locale),
        # A fresh key for every form shown: after a decline or a fix, a new attempt is new.
        idempotency_key=action_forms.new_idempotency_key(),
        problem=problem,
        problem_detail=problem_detail,
        declined=declined,
        declined_href=f"{mp.base}/payments/{declined_id}" if declined_id else None,
    )
    return page(request, "payment_new.html", context, status_code=status_code)


@router.get("/m/{merchant_id}/{env}/payments/new")
def new_payment_form(request: Request, mp: MerchantPage = Depends(merchant_page)) -> Response:
    return _new_form(request, mp)


def _confirm_form(
    request: Request, mp: MerchantPage, shown: dict[str, str], parsed: NewPayment, key: str
) -> Response:
    """The amount as it will be charged, written for the page's locale, to confirm or change."""
    cur = money.currency(parsed.currency)
    assert cur is not None  # action_forms.payment only reads listed currencies
    context = merchant_frame(
        mp,
        "/payments",
        title=f"{_('Confirm the payment')} · {mp.env}",
        form=shown,
        payment=parsed,
        charged=money.format_amount(parsed.amount, cur, i18n.reader().locale),
        idempotency_key=key,
    )
    return page(request, "payment_confirm.html", context)


@router.post("/m/{merchant_id}/{env}/payments/new")
async def create(
    request: Request,
    amount: str = Form(""),
    currency: str = Form(""),
    customer: str = Form(""),
    payment_method: str = Form(""),
    capture_method: str = Form(""),
    description: str = Form(""),
    idempotency_key: str = Form(""),
    step: str = Form(""),
    confirmed_amount: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    """Two steps: the form is read and the amount shown as it will be charged; only the
    confirmation (``step=confirm``, carrying the minor units that were shown) creates it."""
    form = {
        "amount": amount,
        "currency": currency,
        "customer": customer,
        "payment_method": payment_method,
        "capture_method": capture_method,
        "description": description,
    }
    # In the Stripe bulkhead (stripe_pages), never in the thread pool the other pages use.
    return await stripe_pages.run(
        mp, _create, request, mp, form, idempotency_key, step, confirmed_amount
    )


def _create(
    request: Request,
    mp: MerchantPage,
    form: dict[str, str],
    idempotency_key: str,
    step: str,
    confirmed_amount: str,
) -> Response:
    needs_data_set(mp)
    shown = {k: v.strip() for k, v in form.items()}
    if step == "edit":
        return _new_form(request, mp, submitted=shown)
    parsed = action_forms.payment(form, i18n.reader().locale)
    if isinstance(parsed, list):
        return _new_form(request, mp, submitted=shown, errors=parsed, status_code=422)
    key = action_forms.idempotency_key(idempotency_key)
    if step != "confirm" or confirmed_amount != str(parsed.amount) or key is None:
        # Not yet confirmed, or what was confirmed is not what the form now says: show it.
        return _confirm_form(request, mp, shown, parsed, key or action_forms.new_idempotency_key())
    try:
        result = payments.create_payment(mp.rt, mp.merchant.id, mp.env, parsed, key)
    except Exception as exc:
        failure = problem_of(exc, "payment", mp)
        if isinstance(exc, UpstreamFailure) and exc.kind == "declined":
            # The declined PaymentIntent is synced: link it beside the message.
            return _new_form(
                request,
                mp,
                submitted=shown,
                declined=decline_messages.decline(exc.message, exc.code, exc.decline_code),
                declined_id=exc.extra.get("payment_intent"),
                status_code=failure_status(exc),
            )
        return _new_form(
            request,
            mp,
            submitted=shown,
            problem=_("The payment was not created: %(problem)s") % {"problem": failure.summary},
            problem_detail=failure.detail,
            status_code=failure_status(exc),
        )
    log.info("web payment created", merchant_id=mp.merchant.id, env=mp.env, payment_id=result.id)
    return redirect(f"{mp.base}/payments/{result.id}?done=created")


# ---------------------------------------------------------------- one payment


@router.get("/m/{merchant_id}/{env}/payments/{payment_id}")
def payment(
    request: Request,
    payment_id: str,
    done: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    return render_payment(
        request, mp, payment_id, notice=_notice(action_forms.PAYMENT_NOTICES.get(done or ""))
    )


def render_payment(
    request: Request,
    mp: MerchantPage,
    payment_id: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    detail = reads.object_detail(mp.rt, mp.merchant.id, mp.env, "payment_intent", payment_id)
    if detail is None:
        raise not_found()
    status = detail.item.data.get("status")
    context = merchant_frame(
        mp,
        "/payments",
        title=f"{_('Payment')} {payment_id}",
        item=detail.item,
        pi=detail.item.data,
        applied=detail.applied,
        waiting=detail.waiting,
        can_capture=status in CAPTURABLE,
        can_cancel=status in CANCELABLE,
        # One key per button: Stripe refuses a key reused for another request.
        capture_key=action_forms.new_idempotency_key(),
        cancel_key=action_forms.new_idempotency_key(),
        notice=notice,
        problem=problem,
    )
    return page(request, "payment.html", context, status_code=status_code)


def _act(
    request: Request,
    mp: MerchantPage,
    payment_id: str,
    action: Literal["capture", "cancel"],
    idempotency_key: str,
) -> Response:
    # Only payments of this merchant and environment (else 404, as for any foreign page).
    if reads.object_detail(mp.rt, mp.merchant.id, mp.env, "payment_intent", payment_id) is None:
        raise not_found()
    needs_data_set(mp)
    key = action_forms.idempotency_key(idempotency_key)
    try:
        if action == "capture":
            payments.capture_payment(mp.rt, mp.merchant.id, mp.env, payment_id, idempotency_key=key)
        else:
            payments.cancel_payment(mp.rt, mp.merchant.id, mp.env, payment_id, idempotency_key=key)
    except Exception as exc:
        failure = problem_of(exc, action, mp)
        failed = (
            _("The payment was not captured: %(problem)s")
            if action == "capture"
            else _("The payment was not canceled: %(problem)s")
        )
        # To the payment's page with the message: reloading it does not ask Stripe again.
        return redirect_with(
            request,
            f"{mp.base}/payments/{payment_id}",
            mp.session.csrf_token,
            problem=failed % {"problem": failure.summary},
            detail=failure.detail,
        )
    done = "captured" if action == "capture" else "canceled"
    log.info(f"web payment {done}", merchant_id=mp.merchant.id, env=mp.env, payment_id=payment_id)
    return redirect(f"{mp.base}/payments/{payment_id}?done={done}")


@router.post("/m/{merchant_id}/{env}/payments/{payment_id}/capture")
async def capture(
    request: Request,
    payment_id: str,
    idempotency_key: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    return await stripe_pages.run(mp, _act, request, mp, payment_id, "capture", idempotency_key)


@router.post("/m/{merchant_id}/{env}/payments/{payment_id}/cancel")
async def cancel(
    request: Request,
    payment_id: str,
    idempotency_key: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    return await stripe_pages.run(mp, _act, request, mp, payment_id, "cancel", idempotency_key)
