"""Sign-in, sign-out, and where ``/`` and ``/m/{merchant}`` lead."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.errors import AccessDisabled, NotAuthenticated, RateLimited
from merchant_backend.failed_auth import Attempt
from merchant_backend.i18n import gettext as _
from merchant_backend.services import access, sessions
from merchant_backend.services.sessions import WebSession
from merchant_backend.web import session as sess
from merchant_backend.web.layout import frame
from merchant_backend.web.render import WebRoute, page, redirect, runtime_of, safe_next

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _sign_in_form(
    request: Request,
    *,
    next_path: str | None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    token = sess.new_sign_in_token()
    response = page(
        request,
        "sign_in.html",
        frame(
            None,
            title=_("Sign in"),
            error=error,
            next=next_path or "",
            sign_in_token=token,
            notice=notice,
        ),
        status_code=status_code,
    )
    sess.set_sign_in_cookie(response, runtime_of(request), token)
    return response


@router.get("/")
def root(request: Request) -> Response:
    session = sess.current_session(request)
    return redirect(sess.home_of(session) if session else "/sign-in")


@router.get("/sign-in")
def sign_in_page(
    request: Request, next: str | None = None, signed_out: str | None = None
) -> Response:
    session = sess.current_session(request)
    if session is not None:
        return redirect(safe_next(next) or sess.home_of(session))
    notice = _("You are signed out.") if signed_out else None
    return _sign_in_form(request, next_path=safe_next(next), notice=notice)


@router.post("/sign-in")
def sign_in(
    request: Request,
    token: str = Form(""),
    sign_in_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    rt = runtime_of(request)
    next_path = safe_next(next)
    if not sess.sign_in_token_ok(request, rt, sign_in_token):
        return _sign_in_form(
            request,
            next_path=next_path,
            error=_("The sign-in form had expired. Paste your token again."),
            status_code=403,
        )
    token = token.strip()
    invalid = _("That token is not valid. Paste the merchant's API token or the admin token.")
    if rt.settings.admin_token is None:
        invalid = _(
            "That token is not valid. Paste the merchant's API token (the admin sign-in is "
            "off: set MERCHANT_BACKEND_ADMIN_TOKEN to use it)."
        )
    if not token:
        return _sign_in_form(request, next_path=next_path, error=invalid, status_code=401)
    attempt = Attempt("web", sess.client_address(request), "sign-in")
    try:
        principal = access.sign_in(rt, token, attempt)
    except NotAuthenticated:
        return _sign_in_form(request, next_path=next_path, error=invalid, status_code=401)
    except RateLimited as exc:
        response = _sign_in_form(
            request,
            next_path=next_path,
            error=_(
                "Too many failed sign-ins from this address. Wait %(seconds)s seconds, then "
                "try again."
            )
            % {"seconds": exc.retry_after},
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AccessDisabled:
        log.info("web sign-in refused: merchant disabled")
        return _sign_in_form(
            request,
            next_path=next_path,
            error=_(
                "The operator has turned this merchant's access off. Ask them to turn it on again."
            ),
            status_code=403,
        )
    old = request.cookies.get(sess.session_cookie(rt))
    session_id, session = sessions.start_session(rt, principal, replaces=old)
    log.info("web sign-in", merchant_id=principal.merchant_id, admin=principal.is_admin)
    response = redirect(next_path or sess.home_of(session))
    sess.set_session_cookie(response, rt, session_id)
    sess.clear_sign_in_cookie(response, rt)
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: WebSession = Depends(sess.csrf_checked)) -> Response:
    rt = runtime_of(request)
    sessions.end_session(rt, request.cookies.get(sess.session_cookie(rt), ""))
    log.info("web sign-out", merchant_id=session.merchant_id, admin=session.is_admin)
    response = redirect("/sign-in?signed_out=1")
    sess.clear_session_cookie(response, rt)
    return response


@router.get("/m/{merchant_id}")
def merchant_root(
    merchant_id: str, session: WebSession = Depends(sess.require_session)
) -> Response:
    return redirect(f"/m/{merchant_id}/stage")
