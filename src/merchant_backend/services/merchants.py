"""Merchants: create one (its API token is shown once), list them, look one up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.merchants import Merchant


@dataclass(frozen=True)
class NewMerchant:
    """A merchant just created, with its API token: shown in this answer only, never stored."""

    merchant: Merchant
    api_token: str

    def __repr__(self) -> str:
        return f"NewMerchant({self.merchant.id!r}, api_token=<hidden>)"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.merchant.id, "name": self.merchant.name, "api_token": self.api_token}


def create_merchant(rt: Runtime, name: str) -> NewMerchant:
    """``name`` as the adapter checked it (1 to 200 characters, stripped)."""
    with db.write(rt.engine) as conn:
        merchant, token = merchant_store.create(conn, name)
    return NewMerchant(merchant, token)


def list_merchants(rt: Runtime) -> list[Merchant]:
    with db.read(rt.engine) as conn:
        return merchant_store.list_all(conn)


def get_merchant(rt: Runtime, merchant_id: str) -> Merchant | None:
    with db.read(rt.engine) as conn:
        return merchant_store.get(conn, merchant_id)


def merchant_exists(rt: Runtime, merchant_id: str) -> bool:
    return get_merchant(rt, merchant_id) is not None
