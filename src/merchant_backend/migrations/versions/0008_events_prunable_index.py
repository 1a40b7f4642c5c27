"""retention's walk skips what it already pruned: ix_events_done → ix_events_prunable

ix_events_done held every applied and ignored event, so each hourly prune walked again all the
old events whose bodies earlier runs had already removed: the walk grew with every day the
service ran (at 100,000 events a day, some 9 million rows a run after 90 days, each batch its
own write transaction). The new index holds only those that still have a body: a pruned event
leaves it, and a run looks at exactly what it is to prune.

Built and dropped online on PostgreSQL (``migrations/online.py``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from merchant_backend.migrations import online

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ["state", "next_attempt_at", "id"]
DONE = "state IN ('applied', 'ignored')"
PRUNABLE = f"{DONE} AND length(payload) > 0"


def upgrade() -> None:
    online.create_partial_index("ix_events_prunable", "events", COLUMNS, PRUNABLE)
    online.drop_index("ix_events_done", "events")


def downgrade() -> None:
    online.create_partial_index("ix_events_done", "events", COLUMNS, DONE)
    online.drop_index("ix_events_prunable", "events")
