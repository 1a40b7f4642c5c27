"""Bearer tokens: the operator's (admin) sees every merchant, a merchant's sees only itself.

Another merchant's resources answer 404, exactly like missing ones, so a token never learns
which merchant ids exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request

from merchant_backend.api.errors import ApiError, not_found
from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store


@dataclass(frozen=True)
class Principal:
    is_admin: bool
    merchant_id: str | None

    def can_see(self, merchant_id: str) -> bool:
        return self.is_admin or self.merchant_id == merchant_id


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def authenticate(rt: Runtime, token: str) -> Principal | None:
    admin = rt.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Principal(True, None)
    with db.read(rt.engine) as conn:
        merchant = merchant_store.by_token(conn, token)
    return Principal(False, merchant.id) if merchant else None


def principal(request: Request, rt: Runtime = Depends(runtime)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    found = authenticate(rt, token.strip())
    if found is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    return found


def admin(p: Principal = Depends(principal)) -> Principal:
    if not p.is_admin:
        raise ApiError(403, "forbidden", "this needs the operator's admin token")
    return p


def merchant_access(
    merchant_id: str, p: Principal = Depends(principal), rt: Runtime = Depends(runtime)
) -> str:
    """The path's merchant id, if this token may see it and it exists; 404 otherwise."""
    if not p.can_see(merchant_id):
        raise not_found("merchant not found")
    if p.is_admin:
        with db.read(rt.engine) as conn:
            if merchant_store.get(conn, merchant_id) is None:
                raise not_found("merchant not found")
    return merchant_id
