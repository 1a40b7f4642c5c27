"""Sessions of the web pages, kept server-side.

Only a hash of the session id is stored: someone who reads the table cannot sign in with it.
Each session has its own CSRF token, compared on every form post.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from merchant_backend.crypto import new_token
from merchant_backend.store.schema import merchants, web_sessions

# An absolute lifetime: a forgotten browser tab does not stay signed in for days.
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    merchant_id: str | None
    is_admin: bool
    csrf_token: str
    created_at: float
    expires_at: float
    # For an admin session, ``credential_hash(admin token)`` at sign-in (see there).
    credential_hash: str | None = None


def hash_id(session_id: str) -> str:
    # Session ids carry 256 random bits: a fast hash leaves nothing to brute force.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def credential_hash(credential: str) -> str:
    """What an admin session is bound to: a hash of the admin token, under its own label so it
    matches no other hash we store. The admin token has at least 32 characters (``serve``
    refuses shorter ones), so a fast hash leaves nothing practical to brute force."""
    return hashlib.sha256(b"merchant-backend admin session\0" + credential.encode()).hexdigest()


def create(
    conn: Connection,
    *,
    merchant_id: str | None,
    is_admin: bool,
    at: float,
    ttl: float = SESSION_SECONDS,
    bound_to: str | None = None,
) -> tuple[str, WebSession]:
    """A new session; returns the id for the cookie (never stored) and the session."""
    purge_expired(conn, at)
    session_id = new_token("mbs")
    session = WebSession(
        id_hash=hash_id(session_id),
        merchant_id=merchant_id,
        is_admin=is_admin,
        csrf_token=secrets.token_urlsafe(32),
        created_at=at,
        expires_at=at + ttl,
        credential_hash=bound_to,
    )
    conn.execute(
        insert(web_sessions).values(
            id_hash=session.id_hash,
            merchant_id=merchant_id,
            is_admin=is_admin,
            csrf_token=session.csrf_token,
            created_at=at,
            expires_at=session.expires_at,
            credential_hash=bound_to,
        )
    )
    return session_id, session


def get(conn: Connection, session_id: str, at: float) -> WebSession | None:
    """The live session with this id; an expired one, or one of a disabled merchant, counts
    as none."""
    row = conn.execute(
        select(web_sessions)
        .outerjoin(merchants, merchants.c.id == web_sessions.c.merchant_id)
        .where(
            web_sessions.c.id_hash == hash_id(session_id),
            web_sessions.c.expires_at > at,
            merchants.c.disabled_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    return WebSession(
        id_hash=row.id_hash,
        merchant_id=row.merchant_id,
        is_admin=bool(row.is_admin),
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        expires_at=row.expires_at,
        credential_hash=row.credential_hash,
    )


def delete_(conn: Connection, session_id: str) -> bool:
    result = conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == hash_id(session_id)))
    return bool(result.rowcount)


def purge_expired(conn: Connection, at: float) -> int:
    result = conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= at))
    return int(result.rowcount or 0)


def end_for_merchant(conn: Connection, merchant_id: str) -> int:
    """Sign every browser of this merchant out; returns how many sessions ended."""
    result = conn.execute(delete(web_sessions).where(web_sessions.c.merchant_id == merchant_id))
    return int(result.rowcount or 0)
