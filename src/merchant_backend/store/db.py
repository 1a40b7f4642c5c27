"""Engine creation, with the SQLite settings that make it safe for payment data.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss, not only a
crash), a bounded busy wait, and ``BEGIN IMMEDIATE`` for writing transactions so that two
writers queue on the lock instead of failing when a read transaction tries to upgrade.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from merchant_backend.store import sqltext


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if not memory:
            _create_private(make_url(url).database)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            poolclass=NullPool if memory else None,
            hide_parameters=True,
            # Most recently returned first: writers take turns on one lock, so each writing
            # transaction gets the connection the previous one used, whose page cache is still
            # current. In turn (the default) each one found a cache another connection's commit
            # had made stale and read its pages again: 8 reads of the database file per
            # delivery under load in `serve` (strace), 2 with this. Sized for serve's threads
            # (writer, worker, dispatcher, pruner, reconcile, request threads) so that a
            # connection is not opened and closed per checkout beyond the default 5.
            **({} if memory else {"pool_use_lifo": True, "pool_size": pool_size}),
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    # hide_parameters: a database error must not carry event bodies (client secrets, PII) into logs.
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True
    )


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (its WAL files inherit the mode).

    It holds no plaintext secret, but it does hold customers' and payments' data.
    """
    if not path or path.startswith("file:") or os.path.exists(path):
        return
    # Any failure here (no such folder, no permission) is SQLite's to report, on connect.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # Statement journals and sorts in memory, not in files under /var/tmp: the worker's
        # statements that change many rows each wrote (and unlinked) a temporary journal, a
        # third of all writes to disk under load (strace: 19 → 12 writes per delivery). They
        # are bounded by one statement's changed pages; nothing in them needs to be durable.
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver's cursor (sqltext.run): through exec_driver_sql, starting the
        # transaction cost a worker batch as much CPU as one of its statements.
        if conn.get_execution_options().get("sqlite_immediate", True):
            sqltext.run(conn, "BEGIN IMMEDIATE", ())
        else:
            sqltext.run(conn, "BEGIN", ())


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction; on SQLite it does not take the write lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=False)
        with conn.begin():
            yield conn


def ping(engine: Engine) -> None:
    """Raise what the database raises when it does not answer a trivial query (``/healthz``)."""
    with read(engine) as conn:
        conn.execute(text("SELECT 1"))


AFTER_COMMIT = "merchant_backend.after_commit"


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the transaction of ``write`` that ``conn`` belongs to has
    committed (never after a rollback). Used to wake waiters for what was just written."""
    conn.info.setdefault(AFTER_COMMIT, []).append(callback)


# SQLite has one writer at a time. Threads of one process (the inbox writer, the worker, a
# request) queue for it on this lock instead of in SQLite's busy handler, which sleeps 1, 2,
# 5, 10 … ms between tries: a group commit waiting behind a worker batch would otherwise
# lose milliseconds after the lock is free. Other processes still meet the busy timeout.
_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    if not is_sqlite(engine):
        return None
    lock = _sqlite_writers.get(engine)
    if lock is None:
        with _registry_lock:
            lock = _sqlite_writers.setdefault(engine, threading.RLock())
    return lock


def _pragma(conn: Connection, setting: str) -> None:
    # On the driver's connection: through SQLAlchemy the statement would begin a transaction,
    # and SQLite refuses to change the safety level inside one.
    raw: Any = conn.connection.dbapi_connection
    raw.execute(f"PRAGMA {setting}")


@contextmanager
def write(engine: Engine, *, flush: bool = True) -> Iterator[Connection]:
    """A writing transaction, committed on success and rolled back on any error.

    ``flush=False`` commits without waiting for the disk (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit = off``): only for what may be lost in a power cut without
    harm, such as a worker's lease (the event is then simply due again). A later flushed
    commit flushes it too: both logs are written in order.
    """
    callbacks: list[Callable[[], None]] = []
    lock = _writer_lock(engine)
    with lock if lock is not None else contextlib.nullcontext(), engine.connect() as conn:
        if not flush and lock is not None:
            _pragma(conn, "synchronous=NORMAL")
        try:
            with conn.begin():
                if not flush and lock is None:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                try:
                    yield conn
                finally:
                    # Taken off the pooled connection whatever happens, so they never leak
                    # into the next transaction that borrows it.
                    callbacks = conn.info.pop(AFTER_COMMIT, [])
        finally:
            if not flush and lock is not None:
                _pragma(conn, "synchronous=FULL")
    for callback in callbacks:
        callback()


@contextmanager
def raw_write(engine: Engine) -> Iterator[Any]:
    """A writing transaction on the driver's own cursor (sqlite3 or psycopg), for the group
    commit of the webhook inbox only.

    SQLAlchemy's ``Connection`` (pool events, execution context, result object) is Python work
    per batch on the thread that shares the GIL with the event loop: the writer alone (32
    concurrent submitters, in-process) went from 95–108 to 81–89 µs of CPU per event.
    Same guarantees as ``write``: the SQLite writer lock, ``BEGIN IMMEDIATE``, commit on
    success, rollback on any error; a driver error comes out as SQLAlchemy's (``IntegrityError``,
    ``OperationalError`` …, parameters hidden) so callers handle one kind of exception, and a
    connection the driver reports as broken is discarded, never put back in the pool.
    """
    lock = _writer_lock(engine)
    with lock if lock is not None else contextlib.nullcontext():
        raw = engine.raw_connection()
        cursor = None
        try:
            cursor = raw.cursor()
            if lock is not None:
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            raw.commit()
        except engine.dialect.loaded_dbapi.Error as exc:
            _abandon(engine, raw, cursor, exc)
            raise sqltext.driver_error(engine.dialect, exc) from exc
        except BaseException:
            _abandon(engine, raw, cursor, None)
            raise
        finally:
            raw.close()  # back to the pool (or closed, if invalidated)


def _abandon(engine: Engine, raw: Any, cursor: Any, exc: Any) -> None:
    """Roll back after an error; drop the connection if the error says it is broken."""
    if exc is not None and engine.dialect.is_disconnect(exc, raw.dbapi_connection, cursor):
        raw.invalidate(exc)
        return
    try:
        raw.rollback()
    except Exception as rollback_error:
        raw.invalidate(rollback_error)
