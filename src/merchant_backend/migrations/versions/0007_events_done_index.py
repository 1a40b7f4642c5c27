"""retention's walk: a partial index of applied and ignored events by when last scheduled

Migration 0004 dropped ix_events_claim (state, next_attempt_at), which retention's candidate
query also used: since then every prune batch scanned and sorted all applied events (on SQLite
while holding the writer lock). This index gives the walk back its range scan; being partial,
a delivery's insert maintains it only for ignored events, never for the pending ones the
worker will apply.

On PostgreSQL the index is built ``CONCURRENTLY`` (``migrations/online.py`` says why).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from merchant_backend.migrations import online

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DONE = "state IN ('applied', 'ignored')"
NAME = "ix_events_done"


def upgrade() -> None:
    online.create_partial_index(NAME, "events", ["state", "next_attempt_at", "id"], DONE)


def downgrade() -> None:
    op.drop_index(NAME, table_name="events")
