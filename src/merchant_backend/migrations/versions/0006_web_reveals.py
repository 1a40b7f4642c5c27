"""one-time web reveals: new tokens kept for the session that made them, used form nonces

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _session_key() -> sa.Column[str]:
    return sa.Column("session_hash", sa.String(length=64), nullable=False)


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_hash"],
        ["web_sessions.id_hash"],
        name=op.f(f"fk_{table}_session_hash_web_sessions"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "web_reveals",
        _session_key(),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("secret_enc", sa.String(length=400), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        _session_fk("web_reveals"),
        sa.PrimaryKeyConstraint("session_hash", "subject", name=op.f("pk_web_reveals")),
    )
    op.create_table(
        "web_form_nonces",
        _session_key(),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("result", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        _session_fk("web_form_nonces"),
        sa.PrimaryKeyConstraint("session_hash", "nonce", "action", name=op.f("pk_web_form_nonces")),
    )


def downgrade() -> None:
    op.drop_table("web_form_nonces")
    op.drop_table("web_reveals")
