"""Decrypted webhook credentials per (merchant, environment), cached for the hot path.

A webhook must not pay for a database read and an AES decryption each time. Entries live a few
seconds; a signature that fails against a cached entry is checked once more against a fresh
read, so a secret changed by another process is picked up at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db


@dataclass(frozen=True)
class Credentials:
    account_id: str
    secrets: datasets.DataSetSecrets
    loaded_at: float


class SecretCache:
    def __init__(self, runtime: Runtime, ttl: float = 5.0, min_refresh: float = 1.0) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._entries: dict[tuple[str, str], Credentials] = {}
        self._lock = threading.Lock()

    def peek(self, merchant_id: str, env: str) -> Credentials | None:
        """The cached entry if it is still fresh; never touches the database."""
        entry = self._entries.get((merchant_id, env))
        if entry is not None and time.monotonic() - entry.loaded_at < self.ttl:
            return entry
        return None

    def get(self, merchant_id: str, env: str, *, fresh: bool = False) -> Credentials | None:
        key = (merchant_id, env)
        entry = self._entries.get(key)
        mono = time.monotonic()
        if entry is not None and not fresh and mono - entry.loaded_at < self.ttl:
            return entry
        if entry is not None and fresh and mono - entry.loaded_at < self.min_refresh:
            # Forged signatures must not buy a database read and a decryption each.
            return entry
        with db.read(self.runtime.engine) as conn:
            found = datasets.secrets(conn, self.runtime.keys.for_token, merchant_id, env)
        if found is None:
            with self._lock:
                self._entries.pop(key, None)
            return None
        entry = Credentials(found.account_id, found, mono)
        with self._lock:
            self._entries[key] = entry
        return entry

    def invalidate(self, merchant_id: str, env: str) -> None:
        with self._lock:
            self._entries.pop((merchant_id, env), None)
