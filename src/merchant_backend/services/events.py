"""The event inbox: put an event back in line for the worker."""

from __future__ import annotations

from merchant_backend import clock
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox
from merchant_backend.store.inbox import EventPruned as EventPruned
from merchant_backend.store.inbox import InboxEntry


def replay_event(rt: Runtime, merchant_id: str, env: str, event_id: str) -> InboxEntry | None:
    """Put the event back in line, whatever its state (also dead); the worker applies it again
    (harmless: applying is idempotent). None if there is no such event; ``EventPruned`` (a
    ``Conflict``) if retention removed its body."""
    with db.write(rt.engine) as conn:
        if not inbox.replay(conn, merchant_id, env, event_id, clock.now()):
            return None
        return inbox.get(conn, merchant_id, env, event_id)
