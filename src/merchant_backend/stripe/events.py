"""The 15 event types of the help article: what the webhook subscribes to and what we sync."""

from __future__ import annotations

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

DESCRIPTIONS: dict[str, str] = {
    "account.updated": "An account status or property has changed.",
    "customer.source.updated": "Stored credit card has been updated.",
    "customer.updated": "Credit card owner has been updated.",
    "payment_intent.amount_capturable_updated": "Information on amount of intended payment.",
    "payment_intent.canceled": "Payment intent has been canceled.",
    "payment_intent.created": "Payment intent has been created.",
    "payment_intent.payment_failed": "Payment intent has failed.",
    "payment_intent.processing": "Payment intent is in process.",
    "payment_intent.succeeded": "Payment intent has successfully been executed.",
    "payment_method.automatically_updated": "Payment method has automatically been updated.",
    "charge.dispute.closed": "Dispute closed: status becomes lost, warning_closed or won.",
    "charge.dispute.created": "Payment dispute has been initiated with the bank.",
    "charge.dispute.funds_reinstated": "Amount credited back after a dispute won (or partly).",
    "charge.dispute.funds_withdrawn": "Amount withdrawn from your account due to a dispute.",
    "charge.dispute.updated": "Payment dispute has been updated (usually with evidence).",
}
