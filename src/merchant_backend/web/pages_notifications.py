"""The Notifications pages: destinations and their delivery log.

A merchant's environment has its own (``/m/{merchant}/{env}/notifications``); an operator also
has the installation's (``/operator/{env}/notifications``): destinations that receive the
changes of every merchant in that environment, as ``/api/v1/destinations`` and the CLI's
``notifications`` commands without ``--merchant`` manage them. The same handlers serve both,
through a ``Scope`` (whose destinations, and which frame the page gets).

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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.runtime import Runtime
from merchant_backend.services import notifications, once
from merchant_backend.services.sessions import WebSession
from merchant_backend.validation import Env
from merchant_backend.web import destination_messages, once_forms
from merchant_backend.web.layout import ENV_LABELS, Link, frame, merchant_frame
from merchant_backend.web.render import (
    ShownOnce,
    WebRoute,
    not_found,
    page,
    redirect,
    runtime_of,
)
from merchant_backend.web.session import (
    MerchantPage,
    csrf_checked,
    env_of,
    merchant_page_of,
    require_session,
)

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


@dataclass(frozen=True)
class Scope:
    """Whose destinations a page shows: a merchant's environment (``owner`` its id), or the
    installation's (``owner`` None), which only operators see."""

    rt: Runtime
    session: WebSession
    owner: str | None
    env: Env
    root: str  # the pages' base: /m/{merchant}/{env} or /operator/{env}
    merchant_page: MerchantPage | None

    def frame(self, *, title: str, **extra: Any) -> dict[str, Any]:
        if self.merchant_page is not None:
            return merchant_frame(self.merchant_page, SECTION, title=title, **extra)
        envs = [
            Link(f"/operator/{e}{SECTION}", _(label), e == self.env)
            for e, label in ENV_LABELS.items()
        ]
        return frame(
            self.session,
            title=title,
            base=self.root,
            env=self.env,
            env_label=_(ENV_LABELS[self.env]),
            operator_envs=envs,
            **extra,
        )


def _scope(request: Request, env: str, session: WebSession) -> Scope:
    merchant_id = request.path_params.get("merchant_id")
    if merchant_id is None:
        if not session.is_admin:  # as for any page this session may not see
            raise not_found()
        return Scope(runtime_of(request), session, None, env_of(env), f"/operator/{env}", None)
    mp = merchant_page_of(request, merchant_id, env, session)
    return Scope(mp.rt, session, mp.merchant.id, mp.env, mp.base, mp)


def page_scope(request: Request, env: str, session: WebSession = Depends(require_session)) -> Scope:
    return _scope(request, env, session)


def form_scope(request: Request, env: str, session: WebSession = Depends(csrf_checked)) -> Scope:
    return _scope(request, env, session)


MERCHANT = "/m/{merchant_id}/{env}/notifications"
OPERATOR = "/operator/{env}/notifications"


def _list(
    request: Request,
    sc: Scope,
    *,
    errors: dict[str, str] | None = None,
    submitted: dict[str, Any] | None = None,
    notice: str | None = None,
    nonce: str | None = None,
    status_code: int = 200,
) -> Response:
    context = sc.frame(
        title=f"{_('Notifications')} · {sc.env}",
        destinations=notifications.list_destinations(sc.rt, sc.owner, sc.env),
        type_labels=TYPE_LABELS,
        errors=errors or {},
        submitted=submitted or {"object_types": list(notifications.OBJECT_TYPES)},
        notice=notice,
        form_nonce=nonce or once.new_form_nonce(),
        # The ordered feed is a merchant's (the API's /changes); the installation has none.
        feed_url=f"/api/v1/merchants/{sc.owner}/{sc.env}/changes" if sc.owner else None,
    )
    return page(request, "notifications.html", context, status_code=status_code)


def _detail(
    request: Request,
    sc: Scope,
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
            sc.rt, sc.owner, sc.env, destination_id, limit=50, state=state
        )
    except notifications.DestinationNotFound:
        raise not_found() from None
    context = sc.frame(
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


@router.get(MERCHANT)
@router.get(OPERATOR)
def notifications_page(
    request: Request, done: str | None = None, sc: Scope = Depends(page_scope)
) -> Response:
    notice = NOTICES.get(done or "")
    return _list(request, sc, notice=_(notice) if notice else None)


@router.post(MERCHANT)
@router.post(OPERATOR)
async def add_destination(request: Request, sc: Scope = Depends(form_scope)) -> Response:
    form = await request.form()
    post = once_forms.form_post(sc.session, str(form.get("form_nonce", "")))
    url = str(form.get("url", "")).strip()
    description = str(form.get("description", "")).strip()
    types = [str(t) for t in form.getlist("object_types")]
    data = notifications.DestinationInput(url=url, description=description, object_types=types)
    try:
        made = notifications.create_destination_once(sc.rt, sc.owner, sc.env, data, post)
    except notifications.InvalidDestinationInput as exc:
        # Nothing was added: the form comes back with the same nonce, to be sent again.
        submitted = {"url": url, "description": description, "object_types": types}
        errors = destination_messages.field_messages(exc)
        return _list(
            request, sc, errors=errors, submitted=submitted, nonce=post.nonce, status_code=422
        )
    if not made.repeated:
        log.info("web destination added", merchant_id=sc.owner, env=sc.env)
    return redirect(_secret_page(sc, made.id))


def _secret_page(sc: Scope, destination_id: str) -> str:
    return f"{sc.root}{SECTION}/{destination_id}/secret"


@router.get(MERCHANT + "/{destination_id}/secret")
@router.get(OPERATOR + "/{destination_id}/secret")
def new_secret(request: Request, destination_id: str, sc: Scope = Depends(page_scope)) -> Response:
    """The destination's new signing secret, once: the first load shows it and forgets it; a
    reload says it was shown once and offers "New signing secret"."""
    _act(sc, destination_id, notifications.get_destination)  # this merchant's, or 404
    shown = once.take_destination_secret(sc.rt, sc.session, destination_id)
    response = _detail(request, sc, destination_id, shown=shown, secret_gone=shown is None)
    return once_forms.never_kept(response)


@router.get(MERCHANT + "/{destination_id}")
@router.get(OPERATOR + "/{destination_id}")
def destination_page(
    request: Request,
    destination_id: str,
    done: str | None = None,
    state: str | None = None,
    sc: Scope = Depends(page_scope),
) -> Response:
    shown_state = state if state in ("pending", "retrying", "delivered", "failed") else None
    notice = NOTICES.get(done or "")
    return _detail(
        request, sc, destination_id, notice=_(notice) if notice else None, state=shown_state
    )


def _act(sc: Scope, destination_id: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(sc.rt, sc.owner, sc.env, destination_id, *args, **kwargs)
    except notifications.DestinationNotFound:
        raise not_found() from None


@router.post(MERCHANT + "/{destination_id}/enable")
@router.post(OPERATOR + "/{destination_id}/enable")
def enable(destination_id: str, sc: Scope = Depends(form_scope)) -> Response:
    _act(
        sc,
        destination_id,
        notifications.update_destination,
        notifications.DestinationInput(enabled=True),
    )
    return redirect(f"{sc.root}{SECTION}/{destination_id}?done=enabled")


@router.post(MERCHANT + "/{destination_id}/disable")
@router.post(OPERATOR + "/{destination_id}/disable")
def disable(destination_id: str, sc: Scope = Depends(form_scope)) -> Response:
    _act(
        sc,
        destination_id,
        notifications.update_destination,
        notifications.DestinationInput(enabled=False),
    )
    return redirect(f"{sc.root}{SECTION}/{destination_id}?done=disabled")


@router.post(MERCHANT + "/{destination_id}/rotate")
@router.post(OPERATOR + "/{destination_id}/rotate")
def rotate(
    destination_id: str, form_nonce: str = Form(""), sc: Scope = Depends(form_scope)
) -> Response:
    post = once_forms.form_post(sc.session, form_nonce)
    made = _act(sc, destination_id, notifications.rotate_secret_once, post=post)
    if not made.repeated:
        log.info("web destination secret rotated", merchant_id=sc.owner, env=sc.env)
    return redirect(_secret_page(sc, destination_id))


@router.post(MERCHANT + "/{destination_id}/test")
@router.post(OPERATOR + "/{destination_id}/test")
def test(request: Request, destination_id: str, sc: Scope = Depends(form_scope)) -> Response:
    result = _act(sc, destination_id, notifications.send_test)
    return _detail(request, sc, destination_id, test=result)


@router.post(MERCHANT + "/{destination_id}/replay")
@router.post(OPERATOR + "/{destination_id}/replay")
def replay(
    request: Request,
    destination_id: str,
    message_id: str = Form(""),
    failed_since: str = Form(""),
    sc: Scope = Depends(form_scope),
) -> Response:
    since: float | None = None
    if not message_id:
        try:
            day = datetime.strptime(failed_since.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
            since = day.timestamp()
        except ValueError:
            return _detail(
                request,
                sc,
                destination_id,
                errors={"failed_since": _("Give a date as YYYY-MM-DD.")},
                status_code=422,
            )
    try:
        _act(
            sc,
            destination_id,
            notifications.replay,
            message_id=message_id or None,
            failed_since=since,
        )
    except notifications.InvalidDestinationInput as exc:
        errors = destination_messages.field_messages(exc)
        return _detail(request, sc, destination_id, errors=errors, status_code=422)
    return redirect(f"{sc.root}{SECTION}/{destination_id}?done=replayed")


@router.post(MERCHANT + "/{destination_id}/delete")
@router.post(OPERATOR + "/{destination_id}/delete")
def delete(destination_id: str, sc: Scope = Depends(form_scope)) -> Response:
    _act(sc, destination_id, notifications.delete_destination)
    return redirect(f"{sc.root}{SECTION}?done=deleted")
