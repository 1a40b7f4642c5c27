"""Used nonces of the web forms that make something: such a form makes it once.

A form that creates a merchant or rotates a token carries a random nonce, issued with the page.
Its post first claims (session, nonce, action), then does the work and records what it made,
all in one transaction. The same form posted again — a reload of the answer, Back and submit,
a double click — finds the claim and is sent to what the first post made.

Hazard: two posts of the same form at once. The claim is an ``INSERT … ON CONFLICT DO NOTHING``
before any work: on PostgreSQL the second insert waits until the first transaction ends, then
finds its row (or, after a rollback, claims it itself); on SQLite writers already take turns
(``BEGIN IMMEDIATE``). So the work is done once, and the second post reads a committed result.

Rows go with their session (foreign key, ON DELETE CASCADE) and expire with it.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import ColumnElement, Connection, and_, delete, select, update

from merchant_backend.store.schema import web_form_nonces
from merchant_backend.store.upsert import insert_for

# 128 random bits, URL-safe base64: nothing to guess, and a bounded, plain field to check.
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def is_nonce(text: str) -> bool:
    """Whether ``text`` has the shape of a nonce we issue (anything else is refused unread)."""
    return _NONCE.fullmatch(text) is not None


def _where(session_hash: str, nonce: str, action: str) -> ColumnElement[bool]:
    return and_(
        web_form_nonces.c.session_hash == session_hash,
        web_form_nonces.c.nonce == nonce,
        web_form_nonces.c.action == action,
    )


def claim(
    conn: Connection,
    *,
    session_hash: str,
    nonce: str,
    action: str,
    at: float,
    expires_at: float,
) -> bool:
    """True if this post is the first with this nonce for this action (it does the work and
    then ``record``s it); False if an earlier one did (see ``result_of``)."""
    stmt = insert_for(conn, web_form_nonces).values(
        session_hash=session_hash,
        nonce=nonce,
        action=action,
        result=None,
        created_at=at,
        expires_at=expires_at,
    )
    # RETURNING, not rowcount: psycopg reports no row count for this INSERT (-1).
    claimed = conn.execute(stmt.on_conflict_do_nothing().returning(web_form_nonces.c.nonce))
    return claimed.first() is not None


def record(conn: Connection, *, session_hash: str, nonce: str, action: str, result: str) -> None:
    """What the first post made, for the posts of the same form after it."""
    conn.execute(
        update(web_form_nonces).where(_where(session_hash, nonce, action)).values(result=result)
    )


def result_of(conn: Connection, *, session_hash: str, nonce: str, action: str) -> str | None:
    row = conn.execute(
        select(web_form_nonces.c.result).where(_where(session_hash, nonce, action))
    ).first()
    return row.result if row else None


def purge_expired(conn: Connection, at: float) -> int:
    result = conn.execute(delete(web_form_nonces).where(web_form_nonces.c.expires_at <= at))
    return int(result.rowcount or 0)
