"""What a process needs to do its work: settings, the database engine and the master keyring.

Built once per process (``serve``, ``worker``, a CLI command) and handed to whatever needs it,
instead of module-level globals, so tests can run several side by side.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from merchant_backend.bulkhead import Bulkhead
from merchant_backend.crypto import Keyring, load_or_create_key_file, parse_keys
from merchant_backend.failed_auth import FailedAuthLimiter
from merchant_backend.settings import Settings
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.inbox_signal import Doorbell
from merchant_backend.store.secret_cache import SecretCache


@dataclass
class KeyringSource:
    """Loads the master keyring and reloads it when a stored secret names a key it lacks.

    ``rotate-master-key`` writes the new key into the key file before it re-encrypts anything,
    so a running reader that meets a new key id reloads the file and keeps working.
    """

    settings: Settings
    _keyring: Keyring | None = None
    _mtime: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_text(self) -> str:
        if self.settings.master_key is not None:
            return self.settings.master_key.get_secret_value()
        return load_or_create_key_file(Path(self.settings.master_key_file))

    def _load(self) -> Keyring:
        text = self.get_text()
        if self.settings.master_key is None:
            self._mtime = Path(self.settings.master_key_file).stat().st_mtime
        return Keyring(tuple(parse_keys(text)))

    def _file_changed(self) -> bool:
        if self.settings.master_key is not None or self._mtime is None:
            return False
        try:
            return Path(self.settings.master_key_file).stat().st_mtime != self._mtime
        except OSError:
            return False

    def get(self) -> Keyring:
        """The current keyring; a key file changed by a rotation is read again."""
        if self._keyring is None or self._file_changed():
            with self._lock:
                self._keyring = self._load()
        return self._keyring

    def reload(self) -> Keyring:
        with self._lock:
            self._keyring = self._load()
        return self._keyring

    def for_token(self, token: str) -> Keyring:
        ring = self.get()
        if not ring.can_decrypt(token):
            with self._lock:
                self._keyring = self._load()
            ring = self._keyring
        return ring


class Runtime:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_db_engine(
            settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        self.keys = KeyringSource(settings)
        # Rung after events are committed to the inbox in this process; its worker waits on it.
        self.inbox_bell = Doorbell()
        # The webhook's decrypted credentials; a use case that changes a data set forgets its
        # entry here (other processes re-read on a failed signature; entries expire anyway).
        self.secret_cache = SecretCache(self.engine, self.keys.for_token)
        self._lock = threading.Lock()
        self._stripe_bulkhead: Bulkhead | None = None
        self._failed_auth: FailedAuthLimiter | None = None

    @property
    def stripe_bulkhead(self) -> Bulkhead:
        """Room for requests that wait on Stripe, per merchant and in all (this process)."""
        with self._lock:
            if self._stripe_bulkhead is None:
                self._stripe_bulkhead = Bulkhead(
                    "stripe",
                    total=self.settings.stripe_concurrency,
                    per_key=self.settings.stripe_concurrency_per_merchant,
                )
            return self._stripe_bulkhead

    @property
    def failed_auth(self) -> FailedAuthLimiter:
        """Counts of failed authentications (shared by processes when the storage is Redis)."""
        with self._lock:
            if self._failed_auth is None:
                self._failed_auth = FailedAuthLimiter.from_settings(self.settings)
            return self._failed_auth

    def close(self) -> None:
        self.engine.dispose()
