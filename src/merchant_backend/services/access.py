"""Who is calling: the operator's admin token sees every merchant, a merchant's token only itself.

Another merchant's resources look exactly like missing ones, so a token never learns which
merchant ids exist; each adapter turns "no" into its own 401/404, sign-in page or exit code.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from merchant_backend.errors import AccessDisabled, NotAuthenticated
from merchant_backend.failed_auth import Attempt
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, web_sessions
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
    """The principal of an API token (admin or a merchant's), or None if it is not valid.
    ``AccessDisabled`` if it is the token of a merchant the operator has disabled."""
    admin = rt.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Principal(True, None)
    with db.read(rt.engine) as conn:
        merchant = merchant_store.by_token(conn, token)
    if merchant is None:
        return None
    if merchant.disabled:
        raise AccessDisabled(
            "the operator has turned this merchant's access off; ask them to enable it "
            "(merchant-backend merchants enable)"
        )
    return Principal(False, merchant.id)


def sign_in(rt: Runtime, token: str, attempt: Attempt) -> Principal:
    """Check a credential presented by ``attempt`` (an API request or the sign-in form).

    An address over its limit of failures is refused before the token is looked at
    (``RateLimited``); a wrong token is counted, logged and answered ``NotAuthenticated``, or
    ``RateLimited`` when it went past a limit (see ``merchant_backend.failed_auth``).
    """
    rt.failed_auth.check(attempt)
    found = authenticate(rt, token) if token else None
    if found is None:
        rt.failed_auth.failed(attempt)
        raise NotAuthenticated("the token is not valid")
    return found


def admin_session_binding(rt: Runtime) -> str | None:
    """What an admin web session is bound to: a hash of the admin token in effect now (None
    when the admin token is off). A session whose binding differs has ended."""
    admin = rt.settings.admin_token
    return None if admin is None else web_sessions.credential_hash(admin.get_secret_value())


def merchant_exists(rt: Runtime, merchant_id: str) -> bool:
    if not is_merchant_id(merchant_id):
        return False
    with db.read(rt.engine) as conn:
        return merchant_store.get(conn, merchant_id) is not None
