"""Bearer tokens: the operator's (admin) sees every merchant, a merchant's sees only itself.

Another merchant's resources answer 404, exactly like missing ones, so a token never learns
which merchant ids exist.
"""

from __future__ import annotations

from fastapi import Depends, Request

from merchant_backend.api.errors import ApiError, not_found
from merchant_backend.errors import AccessDisabled, NotAuthenticated
from merchant_backend.failed_auth import Attempt
from merchant_backend.runtime import Runtime
from merchant_backend.services.access import Principal, merchant_exists, sign_in
from merchant_backend.validation import is_merchant_id


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def client_address(request: Request) -> str:
    # uvicorn sets this from the socket (or X-Forwarded-For from --forwarded-allow-ips).
    return request.client.host if request.client else "unknown"


def _target(request: Request) -> str:
    """What a wrong token was aimed at: the merchant in the path, the admin routes, or the API."""
    merchant_id = request.path_params.get("merchant_id")
    if isinstance(merchant_id, str) and is_merchant_id(merchant_id):
        return f"merchant:{merchant_id}"
    if request.url.path.rstrip("/") == "/api/v1/merchants":
        return "admin"
    return "api"


def principal(request: Request, rt: Runtime = Depends(runtime)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    attempt = Attempt("api", client_address(request), _target(request))
    try:
        return sign_in(rt, token.strip(), attempt)
    except NotAuthenticated as exc:
        raise ApiError(401, exc.code, exc.message) from None
    except AccessDisabled as exc:
        raise ApiError(403, exc.code, exc.message) from None


def admin_api_on(rt: Runtime = Depends(runtime)) -> None:
    """Refuse before the token is looked at: with no admin token set, none can be right."""
    if rt.settings.admin_token is None:
        raise ApiError(
            403,
            "admin_api_off",
            "the admin API is off: set MERCHANT_BACKEND_ADMIN_TOKEN (in the environment or "
            "./merchant-backend.env) and restart the service",
        )


def admin(_on: None = Depends(admin_api_on), p: Principal = Depends(principal)) -> Principal:
    if not p.is_admin:
        raise ApiError(403, "forbidden", "this needs the operator's admin token")
    return p


def merchant_access(
    merchant_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> str:
    """The path's merchant id, if this token may see it and it exists; 404 otherwise."""
    if not p.can_see(merchant_id):
        raise not_found("merchant not found")
    if p.is_admin and not merchant_exists(rt, merchant_id):
        raise not_found("merchant not found")
    return merchant_id
