"""Sessions of the web pages: start one for a principal that signed in, end one, find the live
one.

Only a hash of a session id is stored; the token the user signed in with is checked once
(``services.access.sign_in``) and never kept. An admin session is bound to the admin token it
was made with: changing the token (or turning it off) ends every admin session.
"""

from __future__ import annotations

import hmac

from merchant_backend import clock
from merchant_backend.runtime import Runtime
from merchant_backend.services import once
from merchant_backend.services.access import Principal, admin_session_binding
from merchant_backend.store import db, web_sessions
from merchant_backend.store.web_sessions import SESSION_SECONDS as SESSION_SECONDS
from merchant_backend.store.web_sessions import WebSession as WebSession


def start_session(
    rt: Runtime, principal: Principal, *, replaces: str | None = None
) -> tuple[str, WebSession]:
    """A new session (its id for the cookie, never stored, and the session); the browser's old
    session, if any, ends in the same transaction."""
    with db.write(rt.engine) as conn:
        if replaces:
            web_sessions.delete_(conn, replaces)
        at = clock.now()
        once.purge_expired(conn, at)
        return web_sessions.create(
            conn,
            merchant_id=principal.merchant_id,
            is_admin=principal.is_admin,
            at=at,
            bound_to=admin_session_binding(rt) if principal.is_admin else None,
        )


def end_session(rt: Runtime, session_id: str) -> None:
    with db.write(rt.engine) as conn:
        web_sessions.delete_(conn, session_id)


def current_session(rt: Runtime, session_id: str) -> WebSession | None:
    """The live session with this id; an expired one, or an admin session whose admin token
    changed or was turned off, counts as none."""
    with db.read(rt.engine) as conn:
        session = web_sessions.get(conn, session_id, clock.now())
    if session is not None and session.is_admin:
        binding = admin_session_binding(rt)
        if (
            binding is None
            or session.credential_hash is None
            or not hmac.compare_digest(binding, session.credential_hash)
        ):
            return None
    return session
