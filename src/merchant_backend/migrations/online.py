"""Index changes that leave the inbox writable while they run (for migration scripts).

A plain ``CREATE INDEX`` on PostgreSQL holds a SHARE lock on its table for the whole build: on a
large inbox, every delivery to the processes still running the old version during a rolling
deploy would wait for it (and Stripe would see timeouts). So PostgreSQL builds and drops them
``CONCURRENTLY``, which must run outside a transaction (Alembic's ``autocommit_block``; env.py
runs each migration in its own). An interrupted concurrent build leaves an invalid index of
that name behind: the next run drops it first. SQLite has one writer anyway: plain statements.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# An index of this name that an interrupted CONCURRENTLY build left unusable.
_INVALID = sa.text(
    "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
    "WHERE pg_class.relname = :name AND pg_class.relnamespace = current_schema()::regnamespace "
    "AND NOT pg_index.indisvalid"
)


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_partial_index(name: str, table: str, columns: list[str], where: str) -> None:
    """``CREATE INDEX name ON table (columns) WHERE where``, without blocking writers."""
    if not _postgresql():
        op.create_index(name, table, columns, unique=False, sqlite_where=sa.text(where))
        return
    with op.get_context().autocommit_block():
        if op.get_bind().execute(_INVALID, {"name": name}).first() is not None:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(
            name,
            table,
            columns,
            unique=False,
            postgresql_where=sa.text(where),
            postgresql_concurrently=True,
        )


def drop_index(name: str, table: str) -> None:
    """``DROP INDEX name``, without blocking writers (and without failing if a run that was
    interrupted after it already dropped it)."""
    if not _postgresql():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
