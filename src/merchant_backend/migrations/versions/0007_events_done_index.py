"""retention's walk: a partial index of applied and ignored events by when last scheduled

Migration 0004 dropped ix_events_claim (state, next_attempt_at), which retention's candidate
query also used: since then every prune batch scanned and sorted all applied events (on SQLite
while holding the writer lock). This index gives the walk back its range scan; being partial,
a delivery's insert maintains it only for ignored events, never for the pending ones the
worker will apply.

On PostgreSQL the index is built ``CONCURRENTLY``: a plain ``CREATE INDEX`` holds a SHARE lock
on the inbox for the whole build, and on a large inbox every delivery to the processes still
running the old version would wait for it (and Stripe would see timeouts). Such a build runs
outside a transaction and, if interrupted, leaves an invalid index behind: a second run drops
that one first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DONE = "state IN ('applied', 'ignored')"


NAME = "ix_events_done"
COLUMNS = ["state", "next_attempt_at", "id"]

# An index of this name that an interrupted CONCURRENTLY build left unusable.
_INVALID = sa.text(
    "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
    "WHERE pg_class.relname = :name AND pg_class.relnamespace = current_schema()::regnamespace "
    "AND NOT pg_index.indisvalid"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, "events", COLUMNS, unique=False, sqlite_where=sa.text(DONE))
        return
    with op.get_context().autocommit_block():
        if op.get_bind().execute(_INVALID, {"name": NAME}).first() is not None:
            op.drop_index(NAME, table_name="events", postgresql_concurrently=True)
        op.create_index(
            NAME,
            "events",
            COLUMNS,
            unique=False,
            postgresql_where=sa.text(DONE),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name="events")
