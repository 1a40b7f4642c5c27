"""Operator routes: create and list merchants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from merchant_backend.api.auth import admin, runtime
from merchant_backend.runtime import Runtime
from merchant_backend.services.access import Principal
from merchant_backend.services.inputs import MerchantCreate
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store

router = APIRouter(prefix="/api/v1/merchants", tags=["merchants"])


@router.post("", status_code=201)
def create_merchant(
    body: MerchantCreate, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Create a merchant. Its `api_token` is shown in this answer only."""
    with db.write(rt.engine) as conn:
        merchant, token = merchant_store.create(conn, body.name)
    return {"id": merchant.id, "name": merchant.name, "api_token": token}


@router.get("")
def list_merchants(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    with db.read(rt.engine) as conn:
        items = merchant_store.list_all(conn)
    return {"object": "list", "data": [m.as_json() for m in items], "has_more": False}
