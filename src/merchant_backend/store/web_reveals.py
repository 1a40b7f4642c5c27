"""New secrets waiting to be shown once, to the web session that made them.

The web pages answer a post that makes a secret (a merchant's API token, or a notification
destination's signing secret, created or rotated) with a redirect, so a reload repeats nothing;
the secret waits here for the page the redirect goes to, which takes it (reads and deletes it
in one transaction) and shows it once.

Hazards, and how they are kept away:
- A copy of the database must not reveal the secret: it is encrypted with the master key like
  the Stripe secrets, with associated data naming the session (its id's hash) and the subject,
  so a ciphertext copied into another session's row does not decrypt.
- It must not outlive the session that may see it: the row goes with its session (foreign key,
  ON DELETE CASCADE) and expires when the session does (``purge_expired`` also catches rows
  of a session deleted without foreign keys, as the sqlite3 shell does by default).
- Two loads of the page at once must not both show it: ``take`` deletes the exact row it read
  and shows it only if that delete removed it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from merchant_backend.crypto import DecryptionError, Keyring
from merchant_backend.store.schema import web_reveals

REASONS = ("created", "rotated")
# secret_enc is String(400): mb1 + key id + base64 of nonce, text and tag fits a secret of up
# to 250 characters; ours are about 50.
MAX_SECRET = 250


@dataclass(frozen=True)
class Reveal:
    subject: str
    secret: str
    reason: str

    def __repr__(self) -> str:
        return f"Reveal({self.subject!r}, {self.reason!r}, secret=<hidden>)"


def merchant_token(merchant_id: str) -> str:
    """The subject of a merchant's new API token."""
    return f"merchant-token/{merchant_id}"


def destination_secret(destination_id: str) -> str:
    """The subject of a notification destination's new signing secret."""
    return f"destination-secret/{destination_id}"


def _aad(session_hash: str, subject: str) -> str:
    return f"merchant-backend/web-reveal/{session_hash}/{subject}"


def keep(
    conn: Connection,
    ring: Keyring,
    *,
    session_hash: str,
    subject: str,
    secret: str,
    reason: str,
    at: float,
    expires_at: float,
) -> None:
    """Keep ``secret`` for the session to be shown once; it replaces one kept for the same
    subject and not shown yet (that one no longer works: it was rotated away)."""
    if reason not in REASONS or len(secret) > MAX_SECRET:
        raise ValueError("a reveal is a short secret, created or rotated")
    where = (web_reveals.c.session_hash == session_hash, web_reveals.c.subject == subject)
    conn.execute(delete(web_reveals).where(*where))
    conn.execute(
        insert(web_reveals).values(
            session_hash=session_hash,
            subject=subject,
            secret_enc=ring.encrypt(secret, _aad(session_hash, subject)),
            reason=reason,
            created_at=at,
            expires_at=expires_at,
        )
    )


def take(
    conn: Connection,
    ring_for: Callable[[str], Keyring],
    *,
    session_hash: str,
    subject: str,
    at: float,
) -> Reveal | None:
    """The secret kept for this session and subject, deleted as it is read; None if there is
    none (never kept, shown already, expired, or kept for another session)."""
    where = (web_reveals.c.session_hash == session_hash, web_reveals.c.subject == subject)
    row = conn.execute(select(web_reveals).where(*where, web_reveals.c.expires_at > at)).first()
    if row is None:
        return None
    gone = conn.execute(
        delete(web_reveals).where(*where, web_reveals.c.secret_enc == row.secret_enc)
    )
    if gone.rowcount != 1:
        return None  # another load of the page took it first
    try:
        secret = ring_for(row.secret_enc).decrypt(row.secret_enc, _aad(session_hash, subject))
    except DecryptionError:
        # The master key it was kept under is gone: it can never be shown, so it is dropped
        # like a shown one (the page then offers to rotate).
        return None
    return Reveal(subject, secret, row.reason)


def purge_expired(conn: Connection, at: float) -> int:
    result = conn.execute(delete(web_reveals).where(web_reveals.c.expires_at <= at))
    return int(result.rowcount or 0)


def reencrypt_all(conn: Connection, ring: Keyring) -> int:
    """Re-encrypt every kept secret not yet under the primary key (master key rotation)."""
    changed = 0
    for row in conn.execute(select(web_reveals)).all():
        if ring.is_primary(row.secret_enc):
            continue
        aad = _aad(row.session_hash, row.subject)
        conn.execute(
            update(web_reveals)
            .where(
                web_reveals.c.session_hash == row.session_hash,
                web_reveals.c.subject == row.subject,
            )
            .values(secret_enc=ring.encrypt(ring.decrypt(row.secret_enc, aad), aad))
        )
        changed += 1
    return changed
