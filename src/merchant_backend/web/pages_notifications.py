"""The Notifications page of a merchant's environment: destinations and their delivery log.

List and add destinations, switch one off and on, rotate its secret, send a test, read its
delivery log, and replay one message or every failed one since a time. Thin adapters over
``services.notifications``, as the API and the CLI are.

A new signing secret is shown once (``services.once``), as a new API token is: "Add destination"
and "New signing secret" answer with a 303 to ``…/notifications/{id}/secret``, which shows the
secret kept for this session and forgets it (``Cache-Control: no-store``); loading it again says
it was shown once and offers to rotate. Both forms carry a one-time nonce: posting the same form
again (a reload, Back and submit) adds no second destination and rotates nothing again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.services import notifications, once
from merchant_backend.web import destination_messages, once_forms
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import ShownOnce, WebRoute, not_found, page, redirect
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

SECTION = "/notifications"
TYPE_LABELS = {
    "payment_intent": N_("Payments"),
    "customer": N_("Customers"),
    "payment_method": N_("Cards and payment methods"),
    "dispute": N_("Disputes"),
    "account": N_("Account"),
}
NOTICES = {
    "enabled": N_("The destination is switched on."),
    "disabled": N_("The destination is switched off: nothing is sent to it."),
    "deleted": N_("The destination is removed."),
    "replayed": N_("Queued again: the dispatcher sends it within seconds."),
}


def _list(
    request: Request,
    mp: MerchantPage,
    *,
    errors: dict[str, str] | None = None,
    submitted: dict[str, Any] | None = None,
    notice: str | None = None,
    nonce: str | None = None,
    status_code: int = 200,
) -> Response:
    context = merchant_frame(
        mp,
        SECTION,
        title=f"{_('Notifications')} · {mp.env}",
        destinations=notifications.list_destinations(mp.rt, mp.merchant.id, mp.env),
        type_labels=TYPE_LABELS,
        errors=errors or {},
        submitted=submitted or {"object_types": list(notifications.OBJECT_TYPES)},
        notice=notice,
        form_nonce=nonce or once.new_form_nonce(),
        feed_url=f"/api/v1/merchants/{mp.merchant.id}/{mp.env}/changes",
    )
    return page(request, "notifications.html", context, status_code=status_code)


def _detail(
    request: Request,
    mp: MerchantPage,
    destination_id: str,
    *,
    shown: once.Reveal | None = None,
    secret_gone: bool = False,
    test: notifications.TestResult | None = None,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
    state: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        delivery_log = notifications.delivery_log(
            mp.rt, mp.merchant.id, mp.env, destination_id, limit=50, state=state
        )
    except notifications.DestinationNotFound:
        raise not_found() from None
    context = merchant_frame(
        mp,
        SECTION,
        title=f"{_('Notifications')} · {delivery_log.destination.destination.url}",
        log=delivery_log,
        dest=delivery_log.destination.destination,
        counts=delivery_log.destination.counts,
        type_labels=TYPE_LABELS,
        # On purpose, this once: pages hide anything shaped like a secret otherwise.
        secret=ShownOnce(shown.secret) if shown else None,
        rotated=shown is not None and shown.reason == "rotated",
        secret_gone=secret_gone,
        form_nonce=once.new_form_nonce(),
        test=test,
        notice=notice,
        errors=errors or {},
        state=state,
    )
    return page(request, "notification.html", context, status_code=status_code)


@router.get("/m/{merchant_id}/{env}/notifications")
def notifications_page(
    request: Request, done: str | None = None, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    notice = NOTICES.get(done or "")
    return _list(request, mp, notice=_(notice) if notice else None)


@router.post("/m/{merchant_id}/{env}/notifications")
async def add_destination(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    form = await request.form()
    post = once_forms.form_post(mp.session, str(form.get("form_nonce", "")))
    url = str(form.get("url", "")).strip()
    description = str(form.get("description", "")).strip()
    types = [str(t) for t in form.getlist("object_types")]
    data = notifications.DestinationInput(url=url, description=description, object_types=types)
    try:
        made = notifications.create_destination_once(mp.rt, mp.merchant.id, mp.env, data, post)
    except notifications.InvalidDestinationInput as exc:
        # Nothing was added: the form comes back with the same nonce, to be sent again.
        submitted = {"url": url, "description": description, "object_types": types}
        errors = destination_messages.field_messages(exc)
        return _list(
            request, mp, errors=errors, submitted=submitted, nonce=post.nonce, status_code=422
        )
    if not made.repeated:
        log.info("web destination added", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(_secret_page(mp, made.id))


def _secret_page(mp: MerchantPage, destination_id: str) -> str:
    return f"{mp.base}{SECTION}/{destination_id}/secret"


@router.get("/m/{merchant_id}/{env}/notifications/{destination_id}/secret")
def new_secret(
    request: Request, destination_id: str, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    """The destination's new signing secret, once: the first load shows it and forgets it; a
    reload says it was shown once and offers "New signing secret"."""
    _act(mp, destination_id, notifications.get_destination)  # this merchant's, or 404
    shown = once.take_destination_secret(mp.rt, mp.session, destination_id)
    response = _detail(request, mp, destination_id, shown=shown, secret_gone=shown is None)
    return once_forms.never_kept(response)


@router.get("/m/{merchant_id}/{env}/notifications/{destination_id}")
def destination_page(
    request: Request,
    destination_id: str,
    done: str | None = None,
    state: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    shown_state = state if state in ("pending", "retrying", "delivered", "failed") else None
    notice = NOTICES.get(done or "")
    return _detail(
        request, mp, destination_id, notice=_(notice) if notice else None, state=shown_state
    )


def _act(mp: MerchantPage, destination_id: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(mp.rt, mp.merchant.id, mp.env, destination_id, *args, **kwargs)
    except notifications.DestinationNotFound:
        raise not_found() from None


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/enable")
def enable(destination_id: str, mp: MerchantPage = Depends(merchant_form)) -> Response:
    _act(
        mp,
        destination_id,
        notifications.update_destination,
        notifications.DestinationInput(enabled=True),
    )
    return redirect(f"{mp.base}{SECTION}/{destination_id}?done=enabled")


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/disable")
def disable(destination_id: str, mp: MerchantPage = Depends(merchant_form)) -> Response:
    _act(
        mp,
        destination_id,
        notifications.update_destination,
        notifications.DestinationInput(enabled=False),
    )
    return redirect(f"{mp.base}{SECTION}/{destination_id}?done=disabled")


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/rotate")
def rotate(
    destination_id: str, form_nonce: str = Form(""), mp: MerchantPage = Depends(merchant_form)
) -> Response:
    post = once_forms.form_post(mp.session, form_nonce)
    made = _act(mp, destination_id, notifications.rotate_secret_once, post=post)
    if not made.repeated:
        log.info("web destination secret rotated", merchant_id=mp.merchant.id, env=mp.env)
    return redirect(_secret_page(mp, destination_id))


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/test")
def test(
    request: Request, destination_id: str, mp: MerchantPage = Depends(merchant_form)
) -> Response:
    result = _act(mp, destination_id, notifications.send_test)
    return _detail(request, mp, destination_id, test=result)


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/replay")
def replay(
    request: Request,
    destination_id: str,
    message_id: str = Form(""),
    failed_since: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    since: float | None = None
    if not message_id:
        try:
            day = datetime.strptime(failed_since.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
            since = day.timestamp()
        except ValueError:
            return _detail(
                request,
                mp,
                destination_id,
                errors={"failed_since": _("Give a date as YYYY-MM-DD.")},
                status_code=422,
            )
    try:
        _act(
            mp,
            destination_id,
            notifications.replay,
            message_id=message_id or None,
            failed_since=since,
        )
    except notifications.InvalidDestinationInput as exc:
        errors = destination_messages.field_messages(exc)
        return _detail(request, mp, destination_id, errors=errors, status_code=422)
    return redirect(f"{mp.base}{SECTION}/{destination_id}?done=replayed")


@router.post("/m/{merchant_id}/{env}/notifications/{destination_id}/delete")
def delete(destination_id: str, mp: MerchantPage = Depends(merchant_form)) -> Response:
    _act(mp, destination_id, notifications.delete_destination)
    return redirect(f"{mp.base}{SECTION}?done=deleted")
