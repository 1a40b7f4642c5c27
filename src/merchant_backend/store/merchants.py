"""Merchants and their API tokens (stored only as hashes)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from merchant_backend import clock
from merchant_backend.crypto import new_token, token_hash
from merchant_backend.store.schema import merchants


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    created_at: float

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "created": int(self.created_at)}


def create(conn: Connection, name: str) -> tuple[Merchant, str]:
    """A new merchant and its API token; the token is returned once and never stored."""
    merchant_id = "mer_" + secrets.token_hex(8)
    token = new_token("mbt")
    created = clock.now()
    conn.execute(
        insert(merchants).values(
            id=merchant_id, name=name, token_hash=token_hash(token), created_at=created
        )
    )
    return Merchant(merchant_id, name, created), token


def list_all(conn: Connection) -> list[Merchant]:
    rows = conn.execute(select(merchants).order_by(merchants.c.created_at, merchants.c.id))
    return [Merchant(r.id, r.name, r.created_at) for r in rows]


def get(conn: Connection, merchant_id: str) -> Merchant | None:
    row = conn.execute(select(merchants).where(merchants.c.id == merchant_id)).first()
    return Merchant(row.id, row.name, row.created_at) if row else None


def by_token(conn: Connection, token: str) -> Merchant | None:
    digest = token_hash(token)
    row = conn.execute(select(merchants).where(merchants.c.token_hash == digest)).first()
    # The index lookup already matched; compare again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Merchant(row.id, row.name, row.created_at)
