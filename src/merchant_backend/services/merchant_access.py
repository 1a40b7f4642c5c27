"""The operator takes a merchant's access back, or gives it again.

- ``rotate_token``: a new API token, shown once; the old one opens nothing from the moment
  this commits, and every web session of the merchant ends (same transaction).
- ``disable`` / ``enable``: the merchant's token and web sessions open nothing while disabled
  (its sessions end at once); nothing is deleted, and webhooks keep being stored and applied,
  because money events must never be dropped. ``enable`` gives the same token back its use.
"""

from __future__ import annotations

from dataclasses import dataclass

from merchant_backend import logs
from merchant_backend.errors import NotFound
from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.merchants import Merchant

log = logs.get("merchant_backend.access")


@dataclass(frozen=True)
class NewToken:
    """A merchant's new API token: shown in this answer only, never stored in clear."""

    id: str
    api_token: str

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "api_token": self.api_token}


def _no_merchant(merchant_id: str) -> NotFound:
    return NotFound(f"no merchant {merchant_id}: see 'merchant-backend merchants list'")


def rotate_token(rt: Runtime, merchant_id: str) -> NewToken:
    with db.write(rt.engine) as conn:
        token = merchant_store.rotate_token(conn, merchant_id)
    if token is None:
        raise _no_merchant(merchant_id)
    log.info("merchant token rotated", merchant_id=merchant_id)
    return NewToken(merchant_id, token)


def set_enabled(rt: Runtime, merchant_id: str, enabled: bool) -> Merchant:
    with db.write(rt.engine) as conn:
        merchant = merchant_store.set_disabled(conn, merchant_id, not enabled)
    if merchant is None:
        raise _no_merchant(merchant_id)
    log.info("merchant enabled" if enabled else "merchant disabled", merchant_id=merchant_id)
    return merchant


def disable(rt: Runtime, merchant_id: str) -> Merchant:
    return set_enabled(rt, merchant_id, False)


def enable(rt: Runtime, merchant_id: str) -> Merchant:
    return set_enabled(rt, merchant_id, True)
