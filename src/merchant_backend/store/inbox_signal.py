"""Waking workers when events are committed to the inbox, instead of polling for them.

Inside one process the inbox writer (and a reconcile run) rings a ``Doorbell`` after its
commit; the worker waits on it with the poll interval as a timeout, so polling stays only as a
fallback. Across processes on PostgreSQL the inserting transaction also sends ``NOTIFY`` (the
server delivers it only once that transaction commits, never for a rolled-back one) and each
worker's ``Listener`` thread rings its own doorbell when one arrives.

The hazard both avoid is a lost wake-up: the worker clears the bell *before* it claims, so a
ring that comes while it claims (or applies) leaves the bell set and its next wait returns at
once; a ring is only ever sent once the rows are visible to other transactions.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Connection, Engine, text

from merchant_backend import logs

CHANNEL = "merchant_backend_inbox"
NOTIFY_SQL = f"NOTIFY {CHANNEL}"

log = logs.get("merchant_backend.inbox")


class Doorbell:
    """A wake-up that is never lost: ``ring`` sets it, ``wait`` returns once it is set (or on
    timeout), ``clear`` re-arms it before the caller looks for work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        """True if rung (or already set), False if ``timeout`` seconds passed without a ring."""
        return self._event.wait(timeout)

    @property
    def rung(self) -> bool:
        return self._event.is_set()


def notify(conn: Connection) -> None:
    """Tell other processes' workers, once this transaction commits, that events are due.

    PostgreSQL folds identical notifications of one transaction into one; SQLite has no such
    thing (and only one process writes it at a time, see ``serve --processes``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(NOTIFY_SQL))


class Listener:
    """A thread that ``LISTEN``s on PostgreSQL and rings ``bell`` for every notification.

    Its own connection, outside the pool, in autocommit. If the connection fails it logs, rings
    (events may have come meanwhile), waits and connects again; the worker's polling covers
    the gap."""

    def __init__(self, engine: Engine, bell: Doorbell, *, check_every: float = 1.0) -> None:
        self.engine = engine
        self.bell = bell
        self.check_every = check_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set once LISTEN is in effect (tests wait on it)

    def _connect(self) -> Any:
        import psycopg

        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        conn = psycopg.connect(*cargs, **{**cparams, "autocommit": True})
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def run(self) -> None:
        retry = 0.5
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                self.listening.set()
                # Anything committed before LISTEN took effect would otherwise wait for a poll.
                self.bell.ring()
                retry = 0.5
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=self.check_every):
                        self.bell.ring()
            except Exception as exc:
                self.listening.clear()
                if self._stop.is_set():
                    break
                log.warning("inbox listener lost its connection", error=type(exc).__name__)
                self.bell.ring()
                self._stop.wait(retry)
                retry = min(retry * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
        self.listening.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="inbox-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
