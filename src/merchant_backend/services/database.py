"""The database as a whole, for operators: bring its schema up to date, say which kind it is,
and check that it answers."""

from __future__ import annotations

from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store.migrate import upgrade


def migrate(rt: Runtime) -> None:
    """Create or upgrade the schema to the newest revision (Alembic, never ``create_all``)."""
    upgrade(rt.engine)


def is_sqlite(rt: Runtime) -> bool:
    """SQLite lets one process write at a time (``serve --processes`` needs PostgreSQL)."""
    return db.is_sqlite(rt.engine)


def check_answers(rt: Runtime) -> None:
    """Raise what the database raises when it does not answer a trivial query."""
    db.ping(rt.engine)
