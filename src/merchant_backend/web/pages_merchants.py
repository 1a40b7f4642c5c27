"""The operator's forms on the merchant list: create a merchant, rotate its token, disable
or enable it.

A new API token is shown once (``services.once``): "Create merchant" and "Rotate token" answer
with a 303 to ``/merchants/{id}/token``, which shows the token kept for this session and forgets
it in the same request (``Cache-Control: no-store``); loading it again says it was shown once
and offers to rotate. The token is never in a URL, a cookie or a log. Both forms carry a
one-time nonce: posting the same form again (a reload, Back and submit) makes no second
merchant and rotates nothing again, and goes to the same token page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.errors import FieldError, NotFound
from merchant_backend.i18n import gettext as _
from merchant_backend.services import merchant_access, merchants, once
from merchant_backend.services.sessions import WebSession
from merchant_backend.web import action_forms, once_forms
from merchant_backend.web import session as sess
from merchant_backend.web.layout import frame
from merchant_backend.web.render import (
    ShownOnce,
    WebRoute,
    not_found,
    page,
    redirect,
    runtime_of,
)

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/merchants")
def merchant_list(
    request: Request, session: WebSession = Depends(sess.require_session)
) -> Response:
    if not session.is_admin:
        return redirect(sess.home_of(session))
    return _list(request, session)


def _list(
    request: Request,
    session: WebSession,
    *,
    nonce: str | None = None,
    name_error: str | None = None,
    name_value: str = "",
    status_code: int = 200,
) -> Response:
    context = frame(
        session,
        title=_("Merchants"),
        merchants=merchants.list_merchants(runtime_of(request)),
        form_nonce=nonce or once.new_form_nonce(),
        name_error=name_error,
        name_value=name_value,
    )
    return page(request, "merchants.html", context, status_code=status_code)


def _token_page(merchant_id: str) -> str:
    return f"/merchants/{merchant_id}/token"


@router.post("/merchants")
def create_merchant(
    request: Request,
    name: str = Form(""),
    form_nonce: str = Form(""),
    session: WebSession = Depends(sess.csrf_checked),
) -> Response:
    if not session.is_admin:
        raise not_found()
    post = once_forms.form_post(session, form_nonce)
    checked = action_forms.merchant_name(name)
    if isinstance(checked, FieldError):
        # Nothing was made: the form comes back with the same nonce, to be sent again.
        return _list(
            request,
            session,
            nonce=post.nonce,
            name_error=checked.message,
            name_value=name.strip()[:200],
            status_code=422,
        )
    made = merchants.create_merchant_once(runtime_of(request), post, checked)
    if not made.repeated:
        log.info("web merchant created", merchant_id=made.id)
    return redirect(_token_page(made.id))


@router.post("/merchants/{merchant_id}/rotate-token")
def rotate_token(
    request: Request,
    merchant_id: str,
    form_nonce: str = Form(""),
    session: WebSession = Depends(sess.csrf_checked),
) -> Response:
    if not session.is_admin:
        raise not_found()
    post = once_forms.form_post(session, form_nonce)
    try:
        merchant_access.rotate_token_once(runtime_of(request), post, merchant_id)
    except NotFound:
        raise not_found() from None
    return redirect(_token_page(merchant_id))


@router.get("/merchants/{merchant_id}/token")
def new_token(
    request: Request, merchant_id: str, session: WebSession = Depends(sess.require_session)
) -> Response:
    """The merchant's new API token, once: the first load shows it and forgets it; a reload
    says it was shown once and offers "Rotate token"."""
    if not session.is_admin:
        raise not_found()
    rt = runtime_of(request)
    merchant = merchants.get_merchant(rt, merchant_id)
    if merchant is None:
        raise not_found()
    shown = once.take_merchant_token(rt, session, merchant_id)
    if shown is None:
        title = _("API token")
    elif shown.reason == "rotated":
        title = _("New API token")
    else:
        title = _("Merchant created")
    context = frame(
        session,
        title=title,
        merchant=merchant,
        # On purpose, this once: the token was made for this page.
        token=ShownOnce(shown.secret) if shown else None,
        rotated=shown is not None and shown.reason == "rotated",
        form_nonce=once.new_form_nonce(),
    )
    return once_forms.never_kept(page(request, "merchant_token.html", context))


@router.post("/merchants/{merchant_id}/disable")
def disable(
    request: Request, merchant_id: str, session: WebSession = Depends(sess.csrf_checked)
) -> Response:
    return _set_enabled(request, merchant_id, session, enabled=False)


@router.post("/merchants/{merchant_id}/enable")
def enable(
    request: Request, merchant_id: str, session: WebSession = Depends(sess.csrf_checked)
) -> Response:
    return _set_enabled(request, merchant_id, session, enabled=True)


def _set_enabled(
    request: Request, merchant_id: str, session: WebSession, *, enabled: bool
) -> Response:
    if not session.is_admin:
        raise not_found()
    try:
        merchant_access.set_enabled(runtime_of(request), merchant_id, enabled)
    except NotFound:
        raise not_found() from None
    return redirect("/merchants")
