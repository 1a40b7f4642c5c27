"""outbound notifications: destinations, outbox, deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_destinations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("env", sa.String(length=5), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("object_types", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("secret_hint", sa.String(length=40), nullable=False),
        sa.Column("failing_since", sa.Float(), nullable=True),
        sa.Column("last_success_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_outbound_destinations_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_destinations")),
    )
    with op.batch_alter_table("outbound_destinations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_destinations_owner", ["env", "merchant_id"], unique=False
        )

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("env", sa.String(length=5), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=True),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_outbound_messages_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_messages_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_outbound_messages_feed",
            ["merchant_id", "env", "sequence"],
            unique=True,
            sqlite_where=sa.text("sequence > 0"),
            postgresql_where=sa.text("sequence > 0"),
        )

    op.create_table(
        "outbound_sequences",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("env", sa.String(length=5), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_outbound_sequences_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("merchant_id", "env", name=op.f("pk_outbound_sequences")),
    )
    op.create_table(
        "outbound_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("destination_id", sa.String(length=40), nullable=False),
        sa.Column("object_ref", sa.String(length=400), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("first_attempt_at", sa.Float(), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("locked_by", sa.String(length=80), nullable=True),
        sa.Column("last_attempt_at", sa.Float(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_excerpt", sa.Text(), nullable=True),
        sa.Column("last_duration", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["outbound_destinations.id"],
            name=op.f("fk_outbound_deliveries_destination_id_outbound_destinations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbound_messages.id"],
            name=op.f("fk_outbound_deliveries_message_id_outbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_deliveries")),
        sa.UniqueConstraint(
            "message_id",
            "destination_id",
            name=op.f("uq_outbound_deliveries_message_id_destination_id"),
        ),
    )
    with op.batch_alter_table("outbound_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_deliveries_claim", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_outbound_deliveries_destination",
            ["destination_id", "state", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_outbound_deliveries_object",
            ["destination_id", "object_ref", "sequence"],
            unique=False,
        )

    op.create_table(
        "outbound_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("destination_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbound_deliveries.id"],
            name=op.f("fk_outbound_attempts_delivery_id_outbound_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempts")),
    )
    with op.batch_alter_table("outbound_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_attempts_delivery", ["delivery_id"], unique=False)
        batch_op.create_index(
            "ix_outbound_attempts_destination", ["destination_id", "at"], unique=False
        )

    with op.batch_alter_table("stripe_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_status", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stripe_objects", schema=None) as batch_op:
        batch_op.drop_column("previous_status")

    with op.batch_alter_table("outbound_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_attempts_destination")
        batch_op.drop_index("ix_outbound_attempts_delivery")

    op.drop_table("outbound_attempts")
    with op.batch_alter_table("outbound_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_deliveries_object")
        batch_op.drop_index("ix_outbound_deliveries_destination")
        batch_op.drop_index("ix_outbound_deliveries_claim")

    op.drop_table("outbound_deliveries")
    op.drop_table("outbound_sequences")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbound_messages_feed",
            sqlite_where=sa.text("sequence > 0"),
            postgresql_where=sa.text("sequence > 0"),
        )
        batch_op.drop_index("ix_outbound_messages_created")

    op.drop_table("outbound_messages")
    with op.batch_alter_table("outbound_destinations", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_destinations_owner")

    op.drop_table("outbound_destinations")
