"""The session cookie, CSRF checks, and who may see which merchant's pages.

The cookie holds only a random session id (``HttpOnly``, ``SameSite=Strict``, ``Secure`` and
the ``__Host-`` prefix when the public URL is https); the token the user signed in with is
checked once and never kept. Every form carries the session's CSRF token; the sign-in form,
which has no session yet, carries a double-submit token from its own short-lived cookie.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Depends, Form, Request, Response

from merchant_backend.i18n import gettext as _
from merchant_backend.runtime import Runtime
from merchant_backend.services import merchants, sessions
from merchant_backend.services.access import Principal
from merchant_backend.services.merchants import Merchant
from merchant_backend.services.sessions import SESSION_SECONDS, WebSession
from merchant_backend.validation import ENVS, Env
from merchant_backend.web.render import SignInRequired, WebError, is_https, not_found, runtime_of

SIGN_IN_SECONDS = 3600


def _cookie_name(rt: Runtime, base: str) -> str:
    # __Host- cookies must be Secure, host-only and for path /: no subdomain can plant one.
    return f"__Host-{base}" if is_https(rt) else base


def session_cookie(rt: Runtime) -> str:
    return _cookie_name(rt, "mb_session")


def sign_in_cookie(rt: Runtime) -> str:
    return _cookie_name(rt, "mb_sign_in")


def _set_cookie(response: Response, rt: Runtime, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=is_https(rt),
        httponly=True,
        samesite="strict",
    )


def set_session_cookie(response: Response, rt: Runtime, session_id: str) -> None:
    _set_cookie(response, rt, session_cookie(rt), session_id, SESSION_SECONDS)


def _clear(response: Response, rt: Runtime, name: str) -> None:
    # A __Host- cookie is only replaced by one with the same attributes.
    response.delete_cookie(name, path="/", secure=is_https(rt), httponly=True, samesite="strict")


def clear_session_cookie(response: Response, rt: Runtime) -> None:
    _clear(response, rt, session_cookie(rt))


def clear_sign_in_cookie(response: Response, rt: Runtime) -> None:
    _clear(response, rt, sign_in_cookie(rt))


def new_sign_in_token() -> str:
    return secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, rt: Runtime, token: str) -> None:
    _set_cookie(response, rt, sign_in_cookie(rt), token, SIGN_IN_SECONDS)


def sign_in_token_ok(request: Request, rt: Runtime, submitted: str) -> bool:
    expected = request.cookies.get(sign_in_cookie(rt), "")
    return bool(expected) and hmac.compare_digest(expected.encode(), submitted.encode())


def current_session(request: Request) -> WebSession | None:
    rt = runtime_of(request)
    session_id = request.cookies.get(session_cookie(rt))
    if not session_id:
        return None
    return sessions.current_session(rt, session_id)


def home_of(session: WebSession) -> str:
    """Where a signed-in browser starts: the operator's merchant list, or the merchant's stage."""
    if session.is_admin:
        return "/merchants"
    return f"/m/{session.merchant_id}/stage"


def client_address(request: Request) -> str:
    # uvicorn sets this from the socket (or X-Forwarded-For from --forwarded-allow-ips).
    return request.client.host if request.client else "unknown"


def require_session(request: Request) -> WebSession:
    session = current_session(request)
    if session is None:
        raise SignInRequired
    return session


def principal_of(session: WebSession) -> Principal:
    return Principal(session.is_admin, session.merchant_id)


def check_csrf(session: WebSession, submitted: str) -> None:
    if not submitted or not hmac.compare_digest(session.csrf_token.encode(), submitted.encode()):
        raise WebError(
            403,
            _("This form has expired"),
            _("The form was not sent from this session. Reload the page and try again."),
        )


def csrf_checked(
    csrf_token: str = Form(""),
    session: WebSession = Depends(require_session),
) -> WebSession:
    """A signed-in session whose form carried its CSRF token."""
    check_csrf(session, csrf_token)
    return session


@dataclass(frozen=True)
class MerchantPage:
    """A page of one merchant and environment, for a session allowed to see it."""

    rt: Runtime
    session: WebSession
    merchant: Merchant
    env: Env

    @property
    def base(self) -> str:
        return f"/m/{self.merchant.id}/{self.env}"


def _merchant_for(rt: Runtime, session: WebSession, merchant_id: str) -> Merchant:
    if not principal_of(session).can_see(merchant_id):
        raise not_found()
    merchant = merchants.get_merchant(rt, merchant_id)
    if merchant is None:
        raise not_found()
    return merchant


def env_of(env: str) -> Env:
    """The path's environment, or 404."""
    for known in ENVS:
        if env == known:
            return known
    raise not_found()


def merchant_page(
    request: Request,
    merchant_id: str,
    env: str,
    session: WebSession = Depends(require_session),
) -> MerchantPage:
    return merchant_page_of(request, merchant_id, env, session)


def merchant_form(
    request: Request,
    merchant_id: str,
    env: str,
    session: WebSession = Depends(csrf_checked),
) -> MerchantPage:
    return merchant_page_of(request, merchant_id, env, session)


def merchant_page_of(
    request: Request, merchant_id: str, env: str, session: WebSession
) -> MerchantPage:
    """The merchant's page if this session may see it, else 404."""
    rt = runtime_of(request)
    return MerchantPage(rt, session, _merchant_for(rt, session, merchant_id), env_of(env))
