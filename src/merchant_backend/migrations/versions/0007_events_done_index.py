"""retention's walk: a partial index of applied and ignored events by when last scheduled

Migration 0004 dropped ix_events_claim (state, next_attempt_at), which retention's candidate
query also used: since then every prune batch scanned and sorted all applied events (on SQLite
while holding the writer lock). This index gives the walk back its range scan; being partial,
a delivery's insert maintains it only for ignored events, never for the pending ones the
worker will apply.

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


def upgrade() -> None:
    op.create_index(
        "ix_events_done",
        "events",
        ["state", "next_attempt_at", "id"],
        unique=False,
        sqlite_where=sa.text(DONE),
        postgresql_where=sa.text(DONE),
    )


def downgrade() -> None:
    op.drop_index("ix_events_done", table_name="events")
