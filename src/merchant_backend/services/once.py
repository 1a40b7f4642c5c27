"""Web forms that make something once, and the new secret they make, shown once.

"Create merchant" and "Rotate token" make an API token that must be copied from the page, as
"Add destination" and "New signing secret" make a notification destination's signing secret. The
post does the work, keeps the token for the session (``store.web_reveals``: encrypted, never
in a cookie, a URL or a log) and answers with a redirect to a page that takes it and shows it
once. The form carries a one-time nonce (``store.form_nonces``), so the same form posted again
(a reload of the post's answer, Back and submit, a double click) makes nothing new and is sent
to what the first post made.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from merchant_backend import clock
from merchant_backend.errors import Conflict
from merchant_backend.i18n import N_
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, form_nonces, web_reveals
from merchant_backend.store.web_reveals import Reveal as Reveal
from merchant_backend.store.web_sessions import WebSession


@dataclass(frozen=True)
class FormPost:
    """A post of a form that makes something once: the session that sent it, the form's nonce."""

    session: WebSession
    nonce: str


@dataclass(frozen=True)
class Outcome:
    """What a form post made (an id), and whether an earlier post of the same form made it."""

    id: str
    repeated: bool = False


def new_form_nonce() -> str:
    """The nonce for a form a page shows (one per page: a form's action is part of its key)."""
    return form_nonces.new_nonce()


def is_form_nonce(text: str) -> bool:
    return form_nonces.is_nonce(text)


FORM_IN_FLIGHT = N_("this form is being sent already")


def earlier(conn: Connection, post: FormPost, action: str, at: float) -> Outcome | None:
    """None when this is the first post of its form for ``action``: the caller does the work
    and calls ``made`` in the same transaction. Otherwise what the first post made."""
    key = {"session_hash": post.session.id_hash, "nonce": post.nonce, "action": action}
    if form_nonces.claim(conn, **key, at=at, expires_at=post.session.expires_at):
        return None
    found = form_nonces.result_of(conn, **key)
    if found is None:
        # Cannot be seen: a claim and its result commit together (see store.form_nonces).
        raise Conflict.of(FORM_IN_FLIGHT)
    return Outcome(found, repeated=True)


def made(
    rt: Runtime,
    conn: Connection,
    post: FormPost,
    action: str,
    made_id: str,
    *,
    subject: str,
    secret: str,
    reason: str,
    at: float,
) -> Outcome:
    """Record what the first post of the form made and keep its new secret for the session."""
    session = post.session
    form_nonces.record(
        conn, session_hash=session.id_hash, nonce=post.nonce, action=action, result=made_id
    )
    web_reveals.keep(
        conn,
        rt.keys.get(),
        session_hash=session.id_hash,
        subject=subject,
        secret=secret,
        reason=reason,
        at=at,
        expires_at=session.expires_at,
    )
    return Outcome(made_id)


def take_merchant_token(rt: Runtime, session: WebSession, merchant_id: str) -> Reveal | None:
    """The merchant's new API token kept for this session, forgotten as it is read: shown
    once. None when there is none (shown already, expired, or another session's)."""
    return _take(rt, session, web_reveals.merchant_token(merchant_id))


def take_destination_secret(rt: Runtime, session: WebSession, destination_id: str) -> Reveal | None:
    """As ``take_merchant_token``, for a notification destination's new signing secret (the
    caller has checked the destination is one the session may see)."""
    return _take(rt, session, web_reveals.destination_secret(destination_id))


def _take(rt: Runtime, session: WebSession, subject: str) -> Reveal | None:
    with db.write(rt.engine) as conn:
        return web_reveals.take(
            conn, rt.keys.for_token, session_hash=session.id_hash, subject=subject, at=clock.now()
        )


def purge_expired(conn: Connection, at: float) -> None:
    """Drop what expired with its session (run when sessions are purged)."""
    web_reveals.purge_expired(conn, at)
    form_nonces.purge_expired(conn, at)
