"""Who is calling: the operator's admin token sees every merchant, a merchant's token only itself.

Another merchant's resources look exactly like missing ones, so a token never learns which
merchant ids exist; each adapter turns "no" into its own 401/404, sign-in page or exit code.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.validation import is_merchant_id


@dataclass(frozen=True)
class Principal:
    is_admin: bool
    merchant_id: str | None

    def can_see(self, merchant_id: str) -> bool:
        # An id not of our format is nobody's: refused before any lookup (issue 9).
        return is_merchant_id(merchant_id) and (self.is_admin or self.merchant_id == merchant_id)


def authenticate(rt: Runtime, token: str) -> Principal | None:
    """The principal of an API token (admin or a merchant's), or None if it is not valid."""
    admin = rt.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Principal(True, None)
    with db.read(rt.engine) as conn:
        merchant = merchant_store.by_token(conn, token)
    return Principal(False, merchant.id) if merchant else None


def merchant_exists(rt: Runtime, merchant_id: str) -> bool:
    if not is_merchant_id(merchant_id):
        return False
    with db.read(rt.engine) as conn:
        return merchant_store.get(conn, merchant_id) is not None
