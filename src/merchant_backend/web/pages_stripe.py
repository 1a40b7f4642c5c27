"""The Stripe connection page: the data set form, the webhook to set up, verify and provision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import clock, logs
from merchant_backend.errors import Conflict, DomainError, FieldError, InvalidInput
from merchant_backend.store import datasets, db, rejections
from merchant_backend.store.datasets import StoredDataSet, webhook_url
from merchant_backend.vocabulary import EVENT_DESCRIPTIONS, HANDLED_EVENTS
from merchant_backend.web import stripe_form, stripe_pages
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import WebError, WebRoute, page, redirect, redirect_with
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

NOTICES = {
    "saved": "The data set is saved.",
    "verified": "Verified against Stripe: the checks are below.",
    "webhook": "The webhook is set up in Stripe.",
    "rolled": "The new signing secret is in use.",
    "deleted": "The data set is deleted: webhooks for this environment are refused now.",
}


def stored_of(mp: MerchantPage) -> StoredDataSet | None:
    with db.read(mp.rt.engine) as conn:
        return datasets.get(conn, mp.merchant.id, mp.env)


def render(
    request: Request,
    mp: MerchantPage,
    stored: StoredDataSet | None,
    *,
    submitted: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    from merchant_backend.stripe.provision import live_url_problem

    url = webhook_url(mp.rt.settings.public_url, mp.merchant.id, mp.env)
    with db.read(mp.rt.engine) as conn:
        rejected = rejections.count_since(conn, mp.merchant.id, mp.env, clock.now() - 86400)
    context = merchant_frame(
        mp,
        "/stripe",
        title=f"Stripe connection · {mp.env}",
        # Live webhooks go only to a public https:// address: say so before it is copied.
        url_problem=live_url_problem(url) if mp.env == "live" else None,
        public_url=mp.rt.settings.public_url,
        rejected=rejected,
        rejected_total=sum(rejected.values()),
        stored=stored,
        fields=stripe_form.fields(mp.env, stored, submitted, errors),
        errors=errors or [],
        health=stored.health() if stored else None,
        report=stored.verify_report if stored else None,
        stale=stripe_form.report_is_stale(stored),
        webhook_url=url,
        events=[(e, EVENT_DESCRIPTIONS[e]) for e in HANDLED_EVENTS],
        notice=notice,
        problem=problem,
        previous_secret=_previous_secret(stored),
        max_roll=datasets.MAX_ROLL_SECONDS,
        **extra,
    )
    return page(request, "stripe.html", context, status_code=status_code)


def _previous_secret(stored: StoredDataSet | None) -> dict[str, Any] | None:
    """The rolled-away secret, masked, while signatures made with it still count."""
    shown = stored.as_json("") if stored else None
    previous = shown["previous_signing_secret"] if shown else None
    return previous if isinstance(previous, dict) else None


@router.get("/m/{merchant_id}/{env}/stripe")
def stripe_page(
    request: Request, done: str | None = None, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    return render(request, mp, stored_of(mp), notice=NOTICES.get(done or ""))


@router.post("/m/{merchant_id}/{env}/stripe")
def save_data_set(
    request: Request,
    account_id: str | None = Form(None),
    publishable_key: str | None = Form(None),
    secret_key: str | None = Form(None),
    webhook_signing_secret: str | None = Form(None),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    """Only the fields the form sends change (a field left out keeps its stored value, an empty
    secret too); the data set after the change is validated as a whole."""
    sent = {
        "account_id": account_id,
        "publishable_key": publishable_key,
        "secret_key": secret_key,
        "webhook_signing_secret": webhook_signing_secret,
    }
    form = {k: v for k, v in sent.items() if v is not None}
    data = stripe_form.to_input(form)
    try:
        with db.write(mp.rt.engine) as conn:
            datasets.save(conn, mp.rt.keys.get(), mp.merchant.id, mp.env, data, partial=True)
    except InvalidInput as exc:
        shown = {k: v.strip() for k, v in form.items() if k not in stripe_form.SECRET_FIELDS}
        return render(
            request, mp, stored_of(mp), submitted=shown, errors=exc.errors, status_code=422
        )
    request.app.state.secret_cache.invalidate(mp.merchant.id, mp.env)
    log.info("web data set saved", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(f"{mp.base}/stripe?done=saved")


def needs_data_set(mp: MerchantPage) -> StoredDataSet:
    stored = stored_of(mp)
    if stored is None:
        raise WebError(
            409, "No data set yet", "Save the Stripe data set of this environment first."
        )
    return stored


def problem_text(exc: Exception, what: str, mp: MerchantPage) -> str:
    """Stripe problems and rejected settings carry messages written for the merchant (never a
    key); anything else is a bug, named only by its kind here and logged in full."""
    from merchant_backend.stripe.errors import StripeProblem

    if isinstance(exc, InvalidInput):
        text = "; ".join(e.message for e in exc.errors)
    elif isinstance(exc, StripeProblem | DomainError):
        text = exc.message
    else:
        log.exception(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env)
        return f"an unexpected error ({type(exc).__name__}); the server log has the details"
    log.warning(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env, error=text)
    return text


def failure_status(exc: Exception) -> int:
    """The page's status for a failed Stripe action: a refused setting is the merchant's to
    fix (422), a decline or a refused request keeps Stripe's status, Stripe refusing our key is
    an upstream failure (502, not the browser's 401/403), anything else 502."""
    from merchant_backend.stripe.errors import StripeProblem

    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, StripeProblem) and exc.status not in (401, 403):
        return exc.status
    return 502


def _failed(
    request: Request, mp: MerchantPage, exc: Exception, what: str, headline: str, anchor: str
) -> Response:
    """Back to the Stripe page, which says what went wrong (called inside the ``except``).

    A redirect, not the page itself: reloading it must not ask Stripe again. A Stripe failure
    of verify or provision is also in the stored report the page shows.
    """
    problem = problem_text(exc, what, mp)
    target = f"{mp.base}/stripe#{anchor}"
    return redirect_with(request, target, mp.session.csrf_token, problem=f"{headline}: {problem}")


def _verify(request: Request, mp: MerchantPage) -> Response:
    from merchant_backend.stripe.verify import verify_connection

    needs_data_set(mp)
    try:
        report: dict[str, Any] = verify_connection(mp.rt, mp.merchant.id, mp.env)
    except Exception as exc:
        return _failed(request, mp, exc, "verify", "Verifying did not finish", "verify-report")
    log.info("web verify", merchant_id=mp.merchant.id, env=mp.env, status=report.get("status"))
    # verify_connection stores the report: the page shows the stored one.
    return redirect(f"{mp.base}/stripe?done=verified#verify-report")


def _create_webhook(request: Request, mp: MerchantPage) -> Response:
    from merchant_backend.stripe.provision import provision_webhook

    needs_data_set(mp)
    try:
        result = provision_webhook(mp.rt, mp.merchant.id, mp.env)
    except Exception as exc:
        request.app.state.secret_cache.invalidate(mp.merchant.id, mp.env)
        return _failed(request, mp, exc, "webhook", "The webhook could not be set up", "webhook-h")
    request.app.state.secret_cache.invalidate(mp.merchant.id, mp.env)
    log.info("web webhook", merchant_id=mp.merchant.id, env=mp.env, action=result.get("action"))
    # The message says what Stripe did (created, completed, or found it complete) and what is
    # left to do, which a fixed text cannot: it goes along with the redirect.
    message = str(result.get("message") or NOTICES["webhook"])
    return redirect_with(
        request,
        f"{mp.base}/stripe#webhook-h",
        mp.session.csrf_token,
        notice=message[:1].upper() + message[1:],
    )


@router.post("/m/{merchant_id}/{env}/stripe/verify")
async def verify(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _verify, request, mp)


@router.post("/m/{merchant_id}/{env}/stripe/webhook")
async def create_webhook(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _create_webhook, request, mp)
