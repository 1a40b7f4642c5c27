"""revocable access: merchants can be disabled, admin sessions bound to the admin token

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("merchants", sa.Column("disabled_at", sa.Float(), nullable=True))
    # Existing admin sessions have no binding and so end: they were made under a token we
    # cannot check them against.
    op.add_column("web_sessions", sa.Column("credential_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("credential_hash")
    with op.batch_alter_table("merchants") as batch:
        batch.drop_column("disabled_at")
