"""Decrypted webhook credentials per (merchant, environment), cached for the hot path.

A webhook must not pay for a database read and an AES decryption each time. Entries live one
second, so a signing secret revoked in another process (``roll-secret --old-valid-for 0``, a
delete) stops verifying everywhere within a second; a signature that fails against a cached
entry is checked once more against a fresh read, so a new secret is picked up at once. Time is
the clock seam's (tests move it); a clock that went back makes an entry stale, never older.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from merchant_backend import clock
from merchant_backend.crypto import Keyring
from merchant_backend.store import datasets, db


@dataclass(frozen=True)
class Credentials:
    account_id: str
    secrets: datasets.DataSetSecrets
    loaded_at: float


class SecretCache:
    def __init__(
        self,
        engine: Engine,
        ring_for: Callable[[str], Keyring],
        ttl: float = 1.0,
        min_refresh: float = 1.0,
    ) -> None:
        """``ring_for(token)``: a keyring that decrypts ``token`` (``KeyringSource.for_token``)."""
        self.engine = engine
        self.ring_for = ring_for
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._entries: dict[tuple[str, str], Credentials] = {}
        self._lock = threading.Lock()

    def peek(self, merchant_id: str, env: str) -> Credentials | None:
        """The cached entry if it is still fresh; never touches the database."""
        entry = self._entries.get((merchant_id, env))
        if entry is not None and 0.0 <= clock.now() - entry.loaded_at < self.ttl:
            return entry
        return None

    def get(self, merchant_id: str, env: str, *, fresh: bool = False) -> Credentials | None:
        key = (merchant_id, env)
        entry = self._entries.get(key)
        at = clock.now()
        age = at - entry.loaded_at if entry is not None else -1.0
        if entry is not None and not fresh and 0.0 <= age < self.ttl:
            return entry
        if entry is not None and fresh and 0.0 <= age < self.min_refresh:
            # Forged signatures must not buy a database read and a decryption each.
            return entry
        with db.read(self.engine) as conn:
            found = datasets.secrets(conn, self.ring_for, merchant_id, env)
        if found is None:
            with self._lock:
                self._entries.pop(key, None)
            return None
        entry = Credentials(found.account_id, found, at)
        with self._lock:
            self._entries[key] = entry
        return entry

    def invalidate(self, merchant_id: str, env: str) -> None:
        with self._lock:
            self._entries.pop((merchant_id, env), None)
