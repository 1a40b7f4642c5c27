"""the worker's queue: a partial index of unapplied events by lane and due time

Replaces ix_events_claim (state, next_attempt_at): claims now take turns between lanes
(merchant, env, source) and walk this index per lane; applied events leave it. Claiming now
also moves next_attempt_at to the end of the lease, so rows already being processed get it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNAPPLIED = "state IN ('pending', 'failed', 'processing')"


def upgrade() -> None:
    op.execute(
        "UPDATE events SET next_attempt_at = lease_until "
        "WHERE state = 'processing' AND lease_until IS NOT NULL"
    )
    op.create_index(
        "ix_events_due",
        "events",
        ["merchant_id", "env", "source", "next_attempt_at", "id"],
        unique=False,
        sqlite_where=sa.text(UNAPPLIED),
        postgresql_where=sa.text(UNAPPLIED),
    )
    op.drop_index("ix_events_claim", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_claim", "events", ["state", "next_attempt_at"], unique=False)
    op.drop_index("ix_events_due", table_name="events")
