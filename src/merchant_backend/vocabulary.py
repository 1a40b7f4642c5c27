"""Stripe's words we act on: the event types we sync, the statuses of the objects, their ranks.

One module, pure data, shared by ``stripe`` (what the webhook subscribes to), ``sync`` (the
ordering rule), ``store`` (which inbox rows wait for a worker) and the adapters (filters,
buttons). Add a new event type here first; ``docs/architecture.md`` says what else to touch.
"""

from __future__ import annotations

from merchant_backend.i18n import N_

# The 15 event types of the help article: what the webhook subscribes to and what we sync.
HANDLED_EVENTS: tuple[str, ...] = (
    "account.updated",
    "customer.source.updated",
    "customer.updated",
    "payment_intent.amount_capturable_updated",
    "payment_intent.canceled",
    "payment_intent.created",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.succeeded",
    "payment_method.automatically_updated",
    "charge.dispute.closed",
    "charge.dispute.created",
    "charge.dispute.funds_reinstated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.updated",
)
HANDLED_SET = frozenset(HANDLED_EVENTS)

# Marked for the web pages' catalogue (translated where shown).
EVENT_DESCRIPTIONS: dict[str, str] = {
    "account.updated": N_("An account status or property has changed."),
    "customer.source.updated": N_("Stored credit card has been updated."),
    "customer.updated": N_("Credit card owner has been updated."),
    "payment_intent.amount_capturable_updated": N_("Information on amount of intended payment."),
    "payment_intent.canceled": N_("Payment intent has been canceled."),
    "payment_intent.created": N_("Payment intent has been created."),
    "payment_intent.payment_failed": N_("Payment intent has failed."),
    "payment_intent.processing": N_("Payment intent is in process."),
    "payment_intent.succeeded": N_("Payment intent has successfully been executed."),
    "payment_method.automatically_updated": N_("Payment method has automatically been updated."),
    "charge.dispute.closed": N_("Dispute closed: status becomes lost, warning_closed or won."),
    "charge.dispute.created": N_("Payment dispute has been initiated with the bank."),
    "charge.dispute.funds_reinstated": N_("Amount credited back after a dispute won (or partly)."),
    "charge.dispute.funds_withdrawn": N_("Amount withdrawn from your account due to a dispute."),
    "charge.dispute.updated": N_("Payment dispute has been updated (usually with evidence)."),
}

# The projections we keep (``stripe_objects.object_type``).
OBJECT_TYPES = ("account", "payment_intent", "customer", "payment_method", "dispute")

# A PaymentIntent's statuses in lifecycle order, each with its rank for the ordering rule:
# later stages outrank earlier ones, the terminal ones outrank everything.
PAYMENT_INTENT_STATUS_RANK: dict[str, int] = {
    "requires_payment_method": 0,
    "requires_confirmation": 1,
    "requires_action": 2,
    "processing": 3,
    "requires_capture": 4,
    "canceled": 9,
    "succeeded": 9,
}
PAYMENT_INTENT_STATUSES: tuple[str, ...] = tuple(PAYMENT_INTENT_STATUS_RANK)
# The statuses in which Stripe lets a PaymentIntent be captured / canceled.
CAPTURABLE = frozenset({"requires_capture"})
CANCELABLE = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)

DISPUTE_STATUS_RANK: dict[str, int] = {
    "warning_needs_response": 0,
    "needs_response": 0,
    "warning_under_review": 1,
    "under_review": 1,
    "charge_refunded": 8,
    "prevented": 8,
    "won": 9,
    "lost": 9,
    "warning_closed": 9,
}
# As the disputes page offers them in its filter.
DISPUTE_STATUSES: tuple[str, ...] = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "prevented",
)

STATUS_RANKS: dict[str, dict[str, int]] = {
    "payment_intent": PAYMENT_INTENT_STATUS_RANK,
    "dispute": DISPUTE_STATUS_RANK,
}

# Within one second, which event of an object comes later in its lifecycle.
EVENT_TYPE_RANK: dict[str, int] = {
    "payment_intent.created": 0,
    "payment_intent.payment_failed": 1,
    "payment_intent.processing": 2,
    "payment_intent.amount_capturable_updated": 3,
    "payment_intent.canceled": 4,
    "payment_intent.succeeded": 4,
    "charge.dispute.created": 0,
    "charge.dispute.funds_withdrawn": 1,
    "charge.dispute.updated": 2,
    "charge.dispute.closed": 3,
    "charge.dispute.funds_reinstated": 4,
}

# The inbox: pending → processing → applied; failed (retried) → dead; ignored (not synced).
INBOX_STATES = ("pending", "processing", "applied", "ignored", "failed", "dead")
INBOX_SOURCES = ("webhook", "reconcile")
