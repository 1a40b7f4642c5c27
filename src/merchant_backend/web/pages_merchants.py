"""The operator's forms on the merchant list: create a merchant, rotate its token, disable
or enable it.

A new API token is shown once, in the answer to the form's POST and nowhere else (never in a
URL, never stored in clear), with ``Cache-Control: no-store`` so no cache keeps it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.errors import FieldError, NotFound
from merchant_backend.i18n import gettext as _
from merchant_backend.services import merchant_access, merchants
from merchant_backend.store.web_sessions import WebSession
from merchant_backend.web import action_forms
from merchant_backend.web import session as sess
from merchant_backend.web.layout import frame
from merchant_backend.web.render import WebRoute, not_found, page, redirect, runtime_of

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/merchants")
def merchant_list(
    request: Request, session: WebSession = Depends(sess.require_session)
) -> Response:
    if not session.is_admin:
        return redirect(sess.home_of(session))
    items = merchants.list_merchants(runtime_of(request))
    return page(request, "merchants.html", frame(session, title=_("Merchants"), merchants=items))


@router.post("/merchants")
def create_merchant(
    request: Request,
    name: str = Form(""),
    session: WebSession = Depends(sess.csrf_checked),
) -> Response:
    if not session.is_admin:
        raise not_found()
    rt = runtime_of(request)
    checked = action_forms.merchant_name(name)
    if isinstance(checked, FieldError):
        context = frame(
            session,
            title=_("Merchants"),
            merchants=merchants.list_merchants(rt),
            name_error=checked.message,
            name_value=name.strip()[:200],
        )
        return page(request, "merchants.html", context, status_code=422)
    created = merchants.create_merchant(rt, checked)
    log.info("web merchant created", merchant_id=created.merchant.id)
    response = page(
        request,
        "merchant_created.html",
        frame(
            session, title=_("Merchant created"), merchant=created.merchant, token=created.api_token
        ),
    )
    return _never_kept(response)


def _never_kept(response: Response) -> Response:
    # Said here as well as by the common headers: this answer must never be kept anywhere.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@router.post("/merchants/{merchant_id}/rotate-token")
def rotate_token(
    request: Request, merchant_id: str, session: WebSession = Depends(sess.csrf_checked)
) -> Response:
    if not session.is_admin:
        raise not_found()
    rt = runtime_of(request)
    try:
        new = merchant_access.rotate_token(rt, merchant_id)
    except NotFound:
        raise not_found() from None
    merchant = merchants.get_merchant(rt, merchant_id)
    context = frame(
        session,
        title=_("New API token"),
        heading=_("New API token"),
        merchant=merchant,
        token=new.api_token,
        rotated=True,
    )
    return _never_kept(page(request, "merchant_created.html", context))


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
