"""The operator takes a merchant's access back, or gives it again.

- ``rotate_token``: a new API token, shown once; the old one opens nothing from the moment
  this commits, and every web session of the merchant ends (same transaction).
- ``disable`` / ``enable``: the merchant's token and web sessions open nothing while disabled
  (its sessions end at once); nothing is deleted, and webhooks keep being stored and applied,
  because money events must never be dropped. ``enable`` gives the same token back its use.
"""

from __future__ import annotations

from dataclasses import dataclass

from merchant_backend import clock, logs
from merchant_backend.errors import NotFound
from merchant_backend.runtime import Runtime
from merchant_backend.services import once
from merchant_backend.store import db, web_reveals
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


def rotate_token_once(rt: Runtime, post: once.FormPost, merchant_id: str) -> once.Outcome:
    """The web's "Rotate token": as ``rotate_token``, with the new token kept, encrypted, for
    the session to see once (``once.take_merchant_token``). The same form posted again rotates
    nothing: the token the operator was shown stays the one that works."""
    at = clock.now()
    action = f"merchant.rotate-token/{merchant_id}"
    with db.write(rt.engine) as conn:
        # Looked up first: only a real merchant's id (at most 40 characters) names an action.
        if merchant_store.get(conn, merchant_id) is None:
            raise _no_merchant(merchant_id)
        first = once.earlier(conn, post, action, at)
        if first is not None:
            return first
        token = merchant_store.rotate_token(conn, merchant_id)
        if token is None:  # the merchant row was just read in this transaction
            raise _no_merchant(merchant_id)
        outcome = once.made(
            rt,
            conn,
            post,
            action,
            merchant_id,
            subject=web_reveals.merchant_token(merchant_id),
            secret=token,
            reason="rotated",
            at=at,
        )
    log.info("merchant token rotated", merchant_id=merchant_id)
    return outcome


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
