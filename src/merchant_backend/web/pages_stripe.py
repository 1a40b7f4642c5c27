"""The Stripe connection page and its actions: save the data set, verify it, set up the
webhook, roll the signing secret, delete the data set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import clock, logs
from merchant_backend.errors import FieldError, InvalidInput
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.services import connection, reads
from merchant_backend.services import datasets as data_sets
from merchant_backend.services.datasets import MAX_ROLL_SECONDS, StoredDataSet, webhook_url
from merchant_backend.stripe.provision import live_url_problem
from merchant_backend.vocabulary import EVENT_DESCRIPTIONS, HANDLED_EVENTS
from merchant_backend.web import action_forms, stripe_form, stripe_pages
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.outcomes import needs_data_set, problem_of, stored_of
from merchant_backend.web.render import WebRoute, not_found, page, redirect, redirect_with
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

NOTICES = {
    "saved": N_("The data set is saved."),
    "verified": N_("Verified against Stripe: the checks are below."),
    "webhook": N_("The webhook is set up in Stripe."),
    "rolled": N_("The new signing secret is in use."),
    "deleted": N_("The data set is deleted: webhooks for this environment are refused now."),
}


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
    url = webhook_url(mp.rt.settings.public_url, mp.merchant.id, mp.env)
    rejected = reads.rejections_since(mp.rt, mp.merchant.id, mp.env, clock.now() - 86400)
    context = merchant_frame(
        mp,
        "/stripe",
        title=f"{_('Stripe connection')} · {mp.env}",
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
        max_roll=MAX_ROLL_SECONDS,
        **extra,
    )
    return page(request, "stripe.html", context, status_code=status_code)


def _previous_secret(stored: StoredDataSet | None) -> dict[str, Any] | None:
    """The rolled-away secret, masked, while signatures made with it still count."""
    shown = stored.as_json("") if stored else None
    previous = shown["previous_signing_secret"] if shown else None
    return previous if isinstance(previous, dict) else None


def _failed(
    request: Request, mp: MerchantPage, exc: Exception, what: str, headline: str, anchor: str
) -> Response:
    """Back to the Stripe page, which says what went wrong (called inside the ``except``).

    A redirect, not the page itself: reloading it must not ask Stripe again. A Stripe failure
    of verify or provision is also in the stored report the page shows.
    """
    failure = problem_of(exc, what, mp)
    target = f"{mp.base}/stripe#{anchor}"
    return redirect_with(
        request,
        target,
        mp.session.csrf_token,
        problem=f"{headline}: {failure.summary}",
        detail=failure.detail,
    )


@router.get("/m/{merchant_id}/{env}/stripe")
def stripe_page(
    request: Request, done: str | None = None, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    return render(request, mp, stored_of(mp), notice=_(NOTICES[done]) if done in NOTICES else None)


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
    try:
        data_sets.save_data_set(
            mp.rt, mp.merchant.id, mp.env, stripe_form.to_input(form), partial=True
        )
    except InvalidInput as exc:
        shown = {k: v.strip() for k, v in form.items() if k not in stripe_form.SECRET_FIELDS}
        return render(
            request, mp, stored_of(mp), submitted=shown, errors=exc.errors, status_code=422
        )
    log.info("web data set saved", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(f"{mp.base}/stripe?done=saved")


def _verify(request: Request, mp: MerchantPage) -> Response:
    needs_data_set(mp)
    try:
        report = connection.verify_data_set(mp.rt, mp.merchant.id, mp.env)
    except Exception as exc:
        return _failed(request, mp, exc, "verify", _("Verifying did not finish"), "verify-report")
    log.info("web verify", merchant_id=mp.merchant.id, env=mp.env, status=report.status)
    # The report is stored: the page shows the stored one.
    return redirect(f"{mp.base}/stripe?done=verified#verify-report")


def _create_webhook(request: Request, mp: MerchantPage) -> Response:
    needs_data_set(mp)
    try:
        result = connection.provision_webhook(mp.rt, mp.merchant.id, mp.env)
    except Exception as exc:
        return _failed(
            request, mp, exc, "webhook", _("The webhook could not be set up"), "webhook-h"
        )
    log.info("web webhook", merchant_id=mp.merchant.id, env=mp.env, action=result.action)
    # The message says what Stripe did (created, completed, or found it complete) and what is
    # left to do, which a fixed text cannot: it goes along with the redirect.
    set_up = NOTICES["webhook"]
    message = result.message or _(set_up)
    return redirect_with(
        request,
        f"{mp.base}/stripe#webhook-h",
        mp.session.csrf_token,
        notice=message[:1].upper() + message[1:],
    )


# Verify and provision wait on Stripe: in the Stripe bulkhead (stripe_pages), never in the
# thread pool the other pages use.
@router.post("/m/{merchant_id}/{env}/stripe/verify")
async def verify(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _verify, request, mp)


@router.post("/m/{merchant_id}/{env}/stripe/webhook")
async def create_webhook(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _create_webhook, request, mp)


@router.post("/m/{merchant_id}/{env}/stripe/roll")
def roll_secret(
    request: Request,
    new_signing_secret: str = Form(""),
    old_valid_for: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    needs_data_set(mp)
    seconds = action_forms.old_valid_for(old_valid_for)
    try:
        if isinstance(seconds, FieldError):
            raise InvalidInput([seconds])
        data_sets.roll_signing_secret(
            mp.rt, mp.merchant.id, mp.env, new_signing_secret.strip(), seconds
        )
    except InvalidInput as exc:
        return render(
            request,
            mp,
            stored_of(mp),
            status_code=422,
            roll_errors={e.field: e.message for e in exc.errors},
            roll_seconds=old_valid_for.strip(),
        )
    log.info("web signing secret rolled", merchant_id=mp.merchant.id, env=mp.env, keep=seconds)
    return redirect(f"{mp.base}/stripe?done=rolled#roll-h")


@router.post("/m/{merchant_id}/{env}/stripe/delete")
def delete_data_set(
    request: Request,
    understood: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    if understood != "yes":
        return render(
            request,
            mp,
            needs_data_set(mp),
            status_code=422,
            delete_error=_("Tick the box to confirm: nothing was deleted."),
        )
    if not data_sets.delete_data_set(mp.rt, mp.merchant.id, mp.env):
        raise not_found()
    log.info("web data set deleted", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(f"{mp.base}/stripe?done=deleted")
