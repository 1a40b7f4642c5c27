"""Operator routes: create and list merchants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, StringConstraints

from merchant_backend.api.auth import Principal, admin, runtime
from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store

router = APIRouter(prefix="/api/v1/merchants", tags=["merchants"])


class MerchantCreate(BaseModel):
    # Stripped before the length check, so "   " is refused rather than stored as "".
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


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
