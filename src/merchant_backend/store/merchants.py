"""Merchants and their API tokens (stored only as hashes)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from merchant_backend import clock
from merchant_backend.crypto import new_token, token_hash
from merchant_backend.store import web_sessions
from merchant_backend.store.schema import merchants


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    created_at: float
    # While set, the merchant's token and web sessions open nothing; webhooks are still stored.
    disabled_at: float | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created": int(self.created_at),
            "disabled": self.disabled,
        }


def _merchant(row: Row[Any]) -> Merchant:
    return Merchant(row.id, row.name, row.created_at, row.disabled_at)


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
    return [_merchant(r) for r in rows]


def get(conn: Connection, merchant_id: str) -> Merchant | None:
    row = conn.execute(select(merchants).where(merchants.c.id == merchant_id)).first()
    return _merchant(row) if row else None


def by_token(conn: Connection, token: str) -> Merchant | None:
    digest = token_hash(token)
    row = conn.execute(select(merchants).where(merchants.c.token_hash == digest)).first()
    # The index lookup already matched; compare again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return _merchant(row)


def rotate_token(conn: Connection, merchant_id: str) -> str | None:
    """Give the merchant a new API token (returned once, only its hash stored); the old one
    opens nothing from this commit on, and every web session of the merchant ends.
    None if there is no such merchant."""
    token = new_token("mbt")
    result = conn.execute(
        update(merchants).where(merchants.c.id == merchant_id).values(token_hash=token_hash(token))
    )
    if not result.rowcount:
        return None
    web_sessions.end_for_merchant(conn, merchant_id)
    return token


def set_disabled(conn: Connection, merchant_id: str, disabled: bool) -> Merchant | None:
    """Turn the merchant's API and web access off (ending its web sessions) or on again.
    Nothing else changes: token, data sets, events and projections stay as they are, and
    webhooks keep being stored. Doing it twice is the same as once."""
    if get(conn, merchant_id) is None:
        return None
    row = merchants.c.id == merchant_id
    if disabled:
        # The first disable's time is kept: it says since when.
        still_enabled = merchants.c.disabled_at.is_(None)
        conn.execute(update(merchants).where(row, still_enabled).values(disabled_at=clock.now()))
        web_sessions.end_for_merchant(conn, merchant_id)
    else:
        conn.execute(update(merchants).where(row).values(disabled_at=None))
    return get(conn, merchant_id)
