"""The database schema (SQLAlchemy Core). Alembic migrations create it; this is the map.

Timestamps we take ourselves are unix seconds as floats; Stripe's ``created`` stays an integer.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

merchants = Table(
    "merchants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    # Set while the operator has turned the merchant's API and web access off.
    Column("disabled_at", Float),
)

stripe_datasets = Table(
    "stripe_datasets",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("account_id", String(80), nullable=False),
    Column("publishable_key", String(300), nullable=False),
    Column("secret_key_enc", Text, nullable=False),
    Column("secret_key_hint", String(40), nullable=False),
    Column("signing_secret_enc", Text),
    Column("signing_secret_hint", String(40)),
    # During a roll Stripe signs with both secrets; the old one is accepted until it expires.
    Column("previous_signing_secret_enc", Text),
    Column("previous_signing_secret_hint", String(40)),
    Column("previous_signing_secret_expires_at", Float),
    Column("webhook_endpoint_id", String(80)),
    Column("verify_report", Text),
    Column("verified_at", Float),
    Column("last_delivery_at", Float),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Inbox states an event is still to be applied in; ix_events_due holds exactly these rows.
UNAPPLIED_STATES = ("pending", "failed", "processing")
# Literal, not bound: SQLite uses a partial index only for a query that repeats its predicate.
UNAPPLIED_SQL = "state IN (" + ", ".join(f"'{s}'" for s in UNAPPLIED_STATES) + ")"
# States whose old bodies retention removes (store/retention.py); ix_events_prunable holds
# these rows while they still have a body (HAS_BODY_SQL: a pruned body is empty).
DONE_STATES = ("applied", "ignored")
DONE_SQL = "state IN (" + ", ".join(f"'{s}'" for s in DONE_STATES) + ")"
HAS_BODY_SQL = "length(payload) > 0"

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), nullable=False
    ),
    Column("env", String(5), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(120), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("object_type", String(40)),
    Column("object_id", String(255)),
    Column("received_at", Float, nullable=False),
    Column("source", String(10), nullable=False),
    # The exact bytes Stripe sent (or the event as fetched by reconcile).
    Column("payload", LargeBinary, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("locked_by", String(80)),
    Column("applied_at", Float),
    UniqueConstraint("merchant_id", "env", "event_id"),
    # The worker's queue: unapplied events by lane (see store/inbox.py), then by when due.
    # Partial, so applied events (nearly all of them) leave it and it stays the size of the
    # backlog; SQLite's rowid is the id.
    Index(
        "ix_events_due",
        "merchant_id",
        "env",
        "source",
        "next_attempt_at",
        "id",
        sqlite_where=text(UNAPPLIED_SQL),
        postgresql_where=text(UNAPPLIED_SQL),
    ),
    Index("ix_events_list", "merchant_id", "env", "created", "id"),
    Index("ix_events_object", "merchant_id", "env", "object_id"),
    # Overview counts and the events page filtered by state (e.g. dead) without a scan.
    Index("ix_events_state", "merchant_id", "env", "state", "created"),
    # Retention's walk (store/retention.py): applied and ignored events that still have their
    # body, by when they were last scheduled, so each prune batch is a range scan whatever the
    # table's size and a run never walks again what an earlier one pruned. Partial: the ingest
    # insert maintains it only for ignored events (pending ones enter when applied).
    Index(
        "ix_events_prunable",
        "state",
        "next_attempt_at",
        "id",
        sqlite_where=text(f"{DONE_SQL} AND {HAS_BODY_SQL}"),
        postgresql_where=text(f"{DONE_SQL} AND {HAS_BODY_SQL}"),
    ),
)

stripe_objects = Table(
    "stripe_objects",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("object_type", String(40), primary_key=True),
    Column("stripe_id", String(255), primary_key=True),
    Column("status", String(40)),
    Column("customer_id", String(255)),
    Column("parent_id", String(255)),
    Column("amount", BigInteger),
    Column("currency", String(3)),
    Column("created", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    # Sortable text: a snapshot replaces the stored one only if its key is greater.
    Column("order_key", String(300), nullable=False),
    Column("last_event_id", String(255)),
    Column("last_event_created", BigInteger),
    Column("synced_at", Float, nullable=False),
    # The status the last replacement replaced: the upsert sets it from the row it overwrites,
    # so the outbound message can name it without a racy read before the write.
    Column("previous_status", String(40)),
    Index("ix_stripe_objects_list", "merchant_id", "env", "object_type", "created", "stripe_id"),
    Index("ix_stripe_objects_customer", "merchant_id", "env", "customer_id"),
)

object_events = Table(
    "object_events",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("stripe_id", String(255), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("object_type", String(40), nullable=False),
    Column("event_type", String(120), nullable=False),
    Column("event_created", BigInteger, nullable=False),
    Column("applied_at", Float, nullable=False),
)

reconcile_state = Table(
    "reconcile_state",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

webhook_rejections = Table(
    "webhook_rejections",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("reason", String(40), primary_key=True),
    Column("count", Integer, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE")),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # An admin session is bound to (a hash of) the admin token it signed in with: when the
    # operator changes MERCHANT_BACKEND_ADMIN_TOKEN, the session no longer matches and ends.
    Column("credential_hash", String(64)),
)

# A new secret (a merchant's API token) waiting to be shown once to the web session that made
# it: encrypted with the master key and bound to that session and subject (store/web_reveals.py).
# The page that shows it deletes it; it goes with its session (the foreign key, and the expiry
# for a session deleted without foreign keys, e.g. from the sqlite3 shell).
web_reveals = Table(
    "web_reveals",
    metadata,
    Column(
        "session_hash",
        String(64),
        ForeignKey("web_sessions.id_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    # What it is the secret of, e.g. "merchant-token/mer_…".
    Column("subject", String(80), primary_key=True),
    Column("secret_enc", String(400), nullable=False),
    # "created" or "rotated": the page says which.
    Column("reason", String(12), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# The one-time nonce of a web form that makes something, once used (store/form_nonces.py): the
# same form posted again (a reload of its answer, Back and submit, a double click) is sent to
# what the first post made instead of making it again. Goes with its session, like web_reveals.
web_form_nonces = Table(
    "web_form_nonces",
    metadata,
    Column(
        "session_hash",
        String(64),
        ForeignKey("web_sessions.id_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("nonce", String(64), primary_key=True),
    # What the form does, e.g. "merchant.create" or "merchant.rotate-token/mer_…".
    Column("action", String(80), primary_key=True),
    # What the first post made (a merchant's id); NULL only inside the first post's transaction.
    Column("result", String(40)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


# --- Outbound notifications (issue 10): destinations, the outbox, deliveries. ---

outbound_destinations = Table(
    "outbound_destinations",
    metadata,
    Column("id", String(40), primary_key=True),
    # NULL: an installation-wide destination of the operator (every merchant's changes).
    Column("merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE")),
    Column("env", String(5), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(500), nullable=False),
    # Comma separated, e.g. "payment_intent,dispute".
    Column("object_types", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    Column("secret_enc", Text, nullable=False),
    Column("secret_hint", String(40), nullable=False),
    # Set by the first failed delivery after a success; cleared by a success.
    Column("failing_since", Float),
    Column("last_success_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_outbound_destinations_owner", "env", "merchant_id"),
)

# The outbox: one row per change, written in the transaction that changed the projection.
outbound_messages = Table(
    "outbound_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    # NULL only for a test message sent to an installation-wide destination.
    Column("merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE")),
    Column("env", String(5), nullable=False),
    # Grows per (merchant, env); 0 for test messages, which are not in the feed.
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(60), nullable=False),
    Column("object_type", String(40)),
    Column("object_id", String(255)),
    Column("created_at", Float, nullable=False),
    # The message exactly as it is signed and sent (JSON text).
    Column("payload", Text, nullable=False),
    Index(
        "ix_outbound_messages_feed",
        "merchant_id",
        "env",
        "sequence",
        unique=True,
        sqlite_where=text("sequence > 0"),
        postgresql_where=text("sequence > 0"),
    ),
    Index("ix_outbound_messages_created", "created_at"),
)

outbound_sequences = Table(
    "outbound_sequences",
    metadata,
    Column(
        "merchant_id", String(40), ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("env", String(5), primary_key=True),
    Column("last", BigInteger, nullable=False),
)

outbound_deliveries = Table(
    "outbound_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "message_id",
        String(40),
        ForeignKey("outbound_messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "destination_id",
        String(40),
        ForeignKey("outbound_destinations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # merchant/env/object_type/object_id (the message id for a test): one object's messages
    # reach a destination in sequence order, one at a time.
    Column("object_ref", String(400), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    # pending → delivering (leased) → delivered | retrying → … → failed
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("first_attempt_at", Float),
    Column("lease_until", Float),
    Column("locked_by", String(80)),
    Column("last_attempt_at", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_excerpt", Text),
    Column("last_duration", Float),
    Column("delivered_at", Float),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("message_id", "destination_id"),
    Index("ix_outbound_deliveries_claim", "state", "next_attempt_at"),
    Index("ix_outbound_deliveries_destination", "destination_id", "state", "created_at"),
    Index("ix_outbound_deliveries_object", "destination_id", "object_ref", "sequence"),
)

# The delivery log: one row per attempt.
outbound_attempts = Table(
    "outbound_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        BigId,
        ForeignKey("outbound_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("destination_id", String(40), nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("duration", Float, nullable=False),
    Column("excerpt", Text),
    Column("error", Text),
    Index("ix_outbound_attempts_destination", "destination_id", "at"),
    Index("ix_outbound_attempts_delivery", "delivery_id"),
)
