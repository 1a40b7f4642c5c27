"""Bring a database to the newest schema with Alembic (never ``create_all``).

Every ``serve`` migrates before it starts, so during a rolling deploy several processes may
try at once: on PostgreSQL they take turns on an advisory lock (the second finds nothing left
to do). Each migration runs in its own transaction, so one that must run outside any (an index
built ``CONCURRENTLY`` while the old version keeps taking deliveries) can.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from merchant_backend import logs

log = logs.get("merchant_backend.migrate")
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# pg_advisory_lock's key for "migrating this database" (any constant no other code uses).
MIGRATION_LOCK = 0x6D62_6D69_6772  # "mbmigr"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one migrating process at a time per database; SQLite's write lock
    already serialises them. A session lock on a connection of its own: it is kept across
    the migrations' commits and released when the connection closes, even if this process
    is killed."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        lock = {"key": MIGRATION_LOCK}
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), lock).scalar_one():
            # Another process is migrating (a long CONCURRENTLY build, say): a start that
            # only waited would look hung.
            log.info("waiting for another process to finish migrating this database")
            conn.execute(text("SELECT pg_advisory_lock(:key)"), lock)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()


def _run(engine: Engine, direction: str, revision: str) -> None:
    cfg = alembic_config()
    # A connection outside any transaction: Alembic starts one per migration (env.py).
    with migration_lock(engine), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)
