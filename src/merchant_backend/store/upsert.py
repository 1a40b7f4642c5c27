"""``INSERT … ON CONFLICT`` for the two dialects we run on (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(conn: Connection | str, table: Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_…``) for a connection or a dialect name."""
    name = conn if isinstance(conn, str) else conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {name!r}: use SQLite or PostgreSQL")
