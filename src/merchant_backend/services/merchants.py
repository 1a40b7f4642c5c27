"""Merchants: create one (its API token is shown once), list them, look one up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merchant_backend import clock
from merchant_backend.runtime import Runtime
from merchant_backend.services import once
from merchant_backend.store import db, web_reveals
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.merchants import Merchant as Merchant


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


CREATE = "merchant.create"


def create_merchant_once(rt: Runtime, post: once.FormPost, name: str) -> once.Outcome:
    """The web's "Create merchant": a new merchant whose API token is kept, encrypted, for the
    session to see once (``once.take_merchant_token``). The same form posted again makes no
    second merchant: it answers the first one's id (``repeated``)."""
    at = clock.now()
    with db.write(rt.engine) as conn:
        first = once.earlier(conn, post, CREATE, at)
        if first is not None:
            return first
        merchant, token = merchant_store.create(conn, name)
        return once.made(
            rt,
            conn,
            post,
            CREATE,
            merchant.id,
            subject=web_reveals.merchant_token(merchant.id),
            secret=token,
            reason="created",
            at=at,
        )


def list_merchants(rt: Runtime) -> list[Merchant]:
    with db.read(rt.engine) as conn:
        return merchant_store.list_all(conn)


def get_merchant(rt: Runtime, merchant_id: str) -> Merchant | None:
    with db.read(rt.engine) as conn:
        return merchant_store.get(conn, merchant_id)


def merchant_exists(rt: Runtime, merchant_id: str) -> bool:
    return get_merchant(rt, merchant_id) is not None
