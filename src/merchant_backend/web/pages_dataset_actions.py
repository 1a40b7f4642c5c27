"""The data set's other actions: roll the signing secret, delete the data set, fetch missed events.

Thin adapters: the store and the Stripe helpers do the work, as for the CLI and the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.errors import FieldError, InvalidInput
from merchant_backend.store import datasets, db
from merchant_backend.web import action_forms, stripe_pages
from merchant_backend.web.pages_stripe import (
    needs_data_set,
    problem_text,
    render,
    stored_of,
)
from merchant_backend.web.render import WebRoute, not_found, redirect, redirect_with
from merchant_backend.web.session import MerchantPage, merchant_form

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

# A run from the browser stops after this many pages (100 events each) so the page answers
# within seconds; reconcile keeps its place and the next click (or `reconcile`) goes on.
WEB_RECONCILE_PAGES = 20


def _field_errors(errors: list[FieldError]) -> dict[str, str]:
    return {e.field: e.message for e in errors}


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
        with db.write(mp.rt.engine) as conn:
            datasets.roll_signing_secret(
                conn, mp.rt.keys.get(), mp.merchant.id, mp.env, new_signing_secret.strip(), seconds
            )
    except InvalidInput as exc:
        return render(
            request,
            mp,
            stored_of(mp),
            status_code=422,
            roll_errors=_field_errors(exc.errors),
            roll_seconds=old_valid_for.strip(),
        )
    request.app.state.secret_cache.invalidate(mp.merchant.id, mp.env)
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
            delete_error="Tick the box to confirm: nothing was deleted.",
        )
    with db.write(mp.rt.engine) as conn:
        if not datasets.delete_(conn, mp.merchant.id, mp.env):
            raise not_found()
    request.app.state.secret_cache.invalidate(mp.merchant.id, mp.env)
    log.info("web data set deleted", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(f"{mp.base}/stripe?done=deleted")


class _PageLimit(Exception):
    """Raised from reconcile's page callback after the page was committed."""


def _stop_after(pages: int) -> Any:
    """Counts this request's pages (a resumed run's count includes earlier ones)."""
    done = 0

    def on_page(_run: Any) -> None:
        nonlocal done
        done += 1
        if done >= pages:
            raise _PageLimit

    return on_page


def _reconcile(request: Request, mp: MerchantPage) -> Response:
    from merchant_backend.stripe import reconcile as rec

    needs_data_set(mp)
    try:
        rec.reconcile(
            mp.rt,
            mp.merchant.id,
            mp.env,
            on_page=_stop_after(WEB_RECONCILE_PAGES),
            holder=f"the web pages ({rec.default_holder()})",
        )
    except _PageLimit:
        log.info("web reconcile paused", merchant_id=mp.merchant.id, env=mp.env)
    except Exception as exc:
        text = problem_text(exc, "reconcile", mp)
        # To the events page with the message: reloading it does not fetch again.
        return redirect_with(
            request,
            f"{mp.base}/events",
            mp.session.csrf_token,
            problem=f"Fetching missed events did not finish: {text}",
        )
    return redirect(f"{mp.base}/events?reconciled=1")


@router.post("/m/{merchant_id}/{env}/events/reconcile")
async def reconcile(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _reconcile, request, mp)
