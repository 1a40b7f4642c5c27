"""Operator routes: create and list merchants, rotate a merchant's API token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from merchant_backend.api.auth import admin, principal, runtime
from merchant_backend.api.auth import merchant_access as merchant_access_of
from merchant_backend.api.errors import ApiError, not_found
from merchant_backend.errors import NotFound
from merchant_backend.runtime import Runtime
from merchant_backend.services import merchant_access, merchants
from merchant_backend.services.access import Principal
from merchant_backend.services.inputs import MerchantCreate

router = APIRouter(prefix="/api/v1/merchants", tags=["merchants"])


@router.post("", status_code=201)
def create_merchant(
    body: MerchantCreate, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Create a merchant. Its `api_token` is shown in this answer only."""
    return merchants.create_merchant(rt, body.name).as_json()


@router.get("")
def list_merchants(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    items = merchants.list_merchants(rt)
    return {"object": "list", "data": [m.as_json() for m in items], "has_more": False}


@router.post("/{merchant_id}/rotate-token")
def rotate_token(
    response: Response,
    merchant_id: str = Depends(merchant_access_of),
    p: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Give the merchant a new `api_token`, shown in this answer only (admin token). The old
    token answers 401 from now on, and every web session of the merchant ends."""
    # Another merchant's id answers 404 (merchant_access_of), as everywhere; one's own, 403.
    if not p.is_admin:
        raise ApiError(403, "forbidden", "this needs the operator's admin token")
    try:
        new = merchant_access.rotate_token(rt, merchant_id)
    except NotFound:
        raise not_found("merchant not found") from None
    response.headers["Cache-Control"] = "no-store"
    return new.as_json()
