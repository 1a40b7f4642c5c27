"""Stripe events for tests, built from Stripe's published objects (tests/fixtures/stripe).

Only fields that the flow changes are overridden; everything else stays as Stripe publishes
it. Events are signed exactly as Stripe signs them.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

from merchant_backend.stripe.signature import sign

# Stripe's published objects, copied into the repository (see tests/fixtures/stripe/SOURCE.md).
FIXTURES = Path(
    os.environ.get(
        "MERCHANT_BACKEND_STRIPE_FIXTURES",
        Path(__file__).resolve().parent / "fixtures" / "stripe",
    )
)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def obj(name: str, **overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(fixture(name))
    data.update(overrides)
    return data


def event(
    type_: str,
    data_object: dict[str, Any],
    *,
    created: int | None = None,
    livemode: bool = False,
    event_id: str | None = None,
    account: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Stripe event envelope in the shape of fixtures' event.json."""
    env = copy.deepcopy(fixture("event"))
    # Random like Stripe's ids: their order says nothing about the order of the events.
    env["id"] = event_id or f"evt_{secrets.token_hex(12)}"
    env["type"] = type_
    env["created"] = created if created is not None else int(time.time())
    env["livemode"] = livemode
    env["api_version"] = "2026-07-29.dahlia"
    env["data"] = {"object": copy.deepcopy(data_object)}
    if previous_attributes is not None:
        env["data"]["previous_attributes"] = previous_attributes
    if account is not None:
        env["account"] = account
    if "livemode" in env["data"]["object"]:
        env["data"]["object"]["livemode"] = livemode
    return env


def body(evt: dict[str, Any]) -> bytes:
    return orjson.dumps(evt)


def signed(
    evt: dict[str, Any] | bytes, secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    raw = evt if isinstance(evt, bytes) else body(evt)
    return raw, sign(raw, secret, int(time.time()) if timestamp is None else timestamp)


# --- Lifecycles (issue 3): each object's events in Stripe's order ---------------------------
#
# Every object starts from Stripe's published example; a step overrides only the fields that
# step of the flow changes. Some steps share a second on purpose, so that the ordering rule's
# precedence (not only ``created``) has to put them in Stripe's order.

EVENT_COLLECTION = {
    "payment_intent": "payment-intents",
    "charge.dispute": "disputes",
    "customer.updated": "customers",
    "customer.source.updated": "payment-methods",
    "payment_method.automatically_updated": "payment-methods",
    "account.updated": "account",
}


def collection_of(type_: str) -> str:
    """The read API's collection an event type syncs into."""
    for prefix, collection in EVENT_COLLECTION.items():
        if type_.startswith(prefix):
            return collection
    raise KeyError(type_)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Lifecycle:
    """A named, ordered list of events for one or more objects."""

    def __init__(self, name: str, events: list[dict[str, Any]]) -> None:
        self.name = name
        self.events = events
        self._adversarial_ids()

    def _adversarial_ids(self) -> None:
        """Events of one object within one second get ids that sort against Stripe's order,
        so only the ordering rule's precedence, never the id tie-break, can get them right."""
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for evt in self.events:
            groups.setdefault((evt["data"]["object"]["id"], evt["created"]), []).append(evt)
        for group in groups.values():
            ids = sorted((e["id"] for e in group), reverse=True)
            for evt, new in zip(group, ids, strict=True):
                evt["id"] = new

    def __repr__(self) -> str:
        return f"Lifecycle({self.name}, {len(self.events)} events)"

    def final_objects(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The in-order state: per (collection, object id), the object of its last event."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for evt in self.events:
            data = evt["data"]["object"]
            out[(collection_of(evt["type"]), data["id"])] = data
        return out

    def last_events(self) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for evt in self.events:
            out[(collection_of(evt["type"]), evt["data"]["object"]["id"])] = evt
        return out

    def history(self) -> dict[str, list[str]]:
        """Per object id, the ids of the events that touched it, in Stripe's order."""
        out: dict[str, list[str]] = {}
        for evt in self.events:
            out.setdefault(evt["data"]["object"]["id"], []).append(evt["id"])
        return out


def payment_intent(pi_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A fresh payment intent (``requires_payment_method``) from Stripe's example."""
    pi_id = pi_id or new_id("pi")
    base = obj(
        "payment_intent",
        id=pi_id,
        client_secret=f"{pi_id}_secret_{secrets.token_hex(12)}",
        status="requires_payment_method",
        amount_capturable=0,
        amount_received=0,
        canceled_at=None,
        cancellation_reason=None,
        last_payment_error=None,
        latest_charge=None,
        next_action=None,
        processing=None,
    )
    base.update(overrides)
    return base


def _step(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def card_declined(charge_id: str) -> dict[str, Any]:
    """``last_payment_error`` as Stripe reports a declined card."""
    return {
        "charge": charge_id,
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card has insufficient funds.",
        "type": "card_error",
    }


def _settles(
    pi: dict[str, Any], charge: str, processing_at: int, succeeded_at: int
) -> list[dict[str, Any]]:
    """payment_intent.processing, then payment_intent.succeeded with ``charge``."""
    return [
        event(
            "payment_intent.processing",
            _step(pi, status="processing", processing={"type": "card"}),
            created=processing_at,
        ),
        event(
            "payment_intent.succeeded",
            _step(pi, status="succeeded", amount_received=pi["amount"], latest_charge=charge),
            created=succeeded_at,
        ),
    ]


def pi_succeeds(t0: int, customer: str | None = None) -> Lifecycle:
    """created → processing → succeeded (processing and succeeded in the same second)."""
    pi = payment_intent(customer=customer, created=t0)
    charge = new_id("ch")
    return Lifecycle(
        "pi_succeeds",
        [
            event("payment_intent.created", pi, created=t0),
            *_settles(pi, charge, t0 + 2, t0 + 2),
        ],
    )


def pi_fails_then_succeeds(t0: int, customer: str | None = None) -> Lifecycle:
    """created → payment_failed (same second) → retried: processing → succeeded."""
    pi = payment_intent(customer=customer, created=t0)
    failed_charge, charge = new_id("ch"), new_id("ch")
    failed = _step(pi, last_payment_error=card_declined(failed_charge), latest_charge=failed_charge)
    return Lifecycle(
        "pi_fails_then_succeeds",
        [
            event("payment_intent.created", pi, created=t0),
            event("payment_intent.payment_failed", failed, created=t0),
            *_settles(pi, charge, t0 + 40, t0 + 41),
        ],
    )


def pi_manual_capture(t0: int, customer: str | None = None) -> Lifecycle:
    """created → amount_capturable_updated (requires_capture) → succeeded on capture."""
    pi = payment_intent(customer=customer, created=t0, capture_method="manual")
    charge = new_id("ch")
    return Lifecycle(
        "pi_manual_capture",
        [
            event("payment_intent.created", pi, created=t0),
            event(
                "payment_intent.amount_capturable_updated",
                _step(
                    pi,
                    status="requires_capture",
                    amount_capturable=pi["amount"],
                    latest_charge=charge,
                ),
                created=t0 + 1,
            ),
            event(
                "payment_intent.succeeded",
                _step(
                    pi,
                    status="succeeded",
                    amount_capturable=0,
                    amount_received=pi["amount"],
                    latest_charge=charge,
                ),
                created=t0 + 3600,
            ),
        ],
    )


def pi_canceled(t0: int, customer: str | None = None) -> Lifecycle:
    """created → authorised (requires_capture) → canceled, released in the same second."""
    pi = payment_intent(customer=customer, created=t0, capture_method="manual")
    charge = new_id("ch")
    held = _step(
        pi, status="requires_capture", amount_capturable=pi["amount"], latest_charge=charge
    )
    return Lifecycle(
        "pi_canceled",
        [
            event("payment_intent.created", pi, created=t0),
            event("payment_intent.amount_capturable_updated", held, created=t0 + 5),
            event(
                "payment_intent.canceled",
                _step(
                    held,
                    status="canceled",
                    amount_capturable=0,
                    canceled_at=t0 + 5,
                    cancellation_reason="requested_by_customer",
                ),
                created=t0 + 5,
            ),
        ],
    )


def balance_transaction(
    dispute_id: str, amount: int, fee: int, category: str, created: int
) -> dict[str, Any]:
    """A dispute's balance transaction (Stripe embeds them in the dispute)."""
    return obj(
        "balance_transaction",
        id=new_id("txn"),
        amount=amount,
        fee=fee,
        net=amount - fee,
        fee_details=(
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": "usd",
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        created=created,
        available_on=created,
        description=(
            f"Chargeback withdrawal for {dispute_id}"
            if amount < 0
            else f"Chargeback reversal for {dispute_id}"
        ),
        reporting_category=category,
        source=dispute_id,
        type="adjustment",
    )


DISPUTE_FEE = 1500


def _dispute_open(t0: int, payment_intent_id: str | None, reason: str) -> dict[str, Any]:
    dispute_id = new_id("dp")
    base = obj(
        "dispute",
        id=dispute_id,
        created=t0,
        charge=new_id("ch"),
        payment_intent=payment_intent_id or new_id("pi"),
        status="needs_response",
        reason=reason,
        balance_transactions=[],
        is_charge_refundable=False,
    )
    base["evidence_details"] = dict(base["evidence_details"], due_by=t0 + 7 * 86400)
    base["payment_method_details"] = copy.deepcopy(base["payment_method_details"])
    base["payment_method_details"]["card"]["case_type"] = "chargeback"
    return base


def _dispute_steps(
    t0: int, payment_intent_id: str | None, reason: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The open dispute, after the withdrawal, and after evidence was submitted."""
    opened = _dispute_open(t0, payment_intent_id, reason)
    withdrawal = balance_transaction(opened["id"], -opened["amount"], DISPUTE_FEE, "dispute", t0)
    withdrawn = _step(opened, balance_transactions=[withdrawal])
    evidence = dict(
        opened["evidence"],
        uncategorized_text="Signed delivery receipt attached.",
        customer_name="Jenny Rosen",
    )
    submitted = _step(
        withdrawn,
        status="under_review",
        evidence=evidence,
        evidence_details=dict(opened["evidence_details"], has_evidence=True, submission_count=1),
    )
    return opened, withdrawn, submitted


def dispute_won(t0: int, payment_intent_id: str | None = None) -> Lifecycle:
    """created → funds_withdrawn (same second) → updated → closed won → funds_reinstated."""
    opened, withdrawn, submitted = _dispute_steps(t0, payment_intent_id, "product_not_received")
    won = _step(submitted, status="won")
    reversal = balance_transaction(
        opened["id"], opened["amount"], -DISPUTE_FEE, "dispute_reversal", t0 + 20 * 86400
    )
    reinstated = _step(won, balance_transactions=[*won["balance_transactions"], reversal])
    return Lifecycle(
        "dispute_won",
        [
            event("charge.dispute.created", opened, created=t0),
            event("charge.dispute.funds_withdrawn", withdrawn, created=t0),
            event(
                "charge.dispute.updated",
                submitted,
                created=t0 + 3 * 86400,
                previous_attributes={"status": "needs_response"},
            ),
            event(
                "charge.dispute.closed",
                won,
                created=t0 + 20 * 86400,
                previous_attributes={"status": "under_review"},
            ),
            event("charge.dispute.funds_reinstated", reinstated, created=t0 + 20 * 86400),
        ],
    )


def dispute_lost(t0: int, payment_intent_id: str | None = None) -> Lifecycle:
    """created → funds_withdrawn → updated (evidence) → closed lost (the money stays gone)."""
    opened, withdrawn, submitted = _dispute_steps(t0, payment_intent_id, "fraudulent")
    return Lifecycle(
        "dispute_lost",
        [
            event("charge.dispute.created", opened, created=t0),
            event("charge.dispute.funds_withdrawn", withdrawn, created=t0 + 1),
            event("charge.dispute.updated", submitted, created=t0 + 2 * 86400),
            event(
                "charge.dispute.closed",
                _step(submitted, status="lost"),
                created=t0 + 30 * 86400,
                previous_attributes={"status": "under_review"},
            ),
        ],
    )


def card_expiry_updates(t0: int, customer: str | None = None) -> Lifecycle:
    """customer.source.updated twice: a stored card's expiry renewed, then its holder name."""
    customer = customer or new_id("cus")
    card = obj("card", id=new_id("card"), customer=customer, exp_month=8, exp_year=2026)
    renewed = _step(card, exp_month=11, exp_year=2031)
    return Lifecycle(
        "card_expiry_updates",
        [
            event(
                "customer.source.updated",
                renewed,
                created=t0,
                previous_attributes={"exp_month": 8, "exp_year": 2026},
            ),
            event(
                "customer.source.updated",
                _step(renewed, name="Jenny R. Rosen"),
                created=t0 + 60,
                previous_attributes={"name": "Jenny Rosen"},
            ),
        ],
    )


def payment_method_updates(t0: int, customer: str | None = None) -> Lifecycle:
    """payment_method.automatically_updated twice: the network sends a new expiry, then a
    replacement card number (new last4)."""
    pm = obj("payment_method", id=new_id("pm"), customer=customer or new_id("cus"))
    first = copy.deepcopy(pm)
    first["card"].update(exp_month=9, exp_year=2032)
    second = copy.deepcopy(first)
    second["card"].update(last4="1881", exp_month=2, exp_year=2033, fingerprint="Xt5EWLLDS7FJjR1c")
    return Lifecycle(
        "payment_method_updates",
        [
            event(
                "payment_method.automatically_updated",
                first,
                created=t0,
                previous_attributes={"card": {"exp_month": 8, "exp_year": 2030}},
            ),
            event(
                "payment_method.automatically_updated",
                second,
                created=t0 + 86400,
                previous_attributes={"card": {"last4": "4242", "exp_month": 9, "exp_year": 2032}},
            ),
        ],
    )


def account_requirements(t0: int) -> Lifecycle:
    """account.updated three times: requirements shrink, then charges and payouts get enabled."""
    acct = obj("account")
    due = acct["requirements"]["currently_due"]
    fewer = copy.deepcopy(acct)
    fewer["requirements"].update(
        currently_due=due[3:], eventually_due=due[3:], disabled_reason="requirements.past_due"
    )
    done = copy.deepcopy(fewer)
    done["requirements"].update(
        currently_due=[], eventually_due=[], past_due=[], disabled_reason=None
    )
    done.update(details_submitted=True, charges_enabled=True)
    payouts = _step(done, payouts_enabled=True)
    return Lifecycle(
        "account_requirements",
        [
            event(
                "account.updated",
                fewer,
                created=t0,
                previous_attributes={"requirements": {"currently_due": due}},
            ),
            event(
                "account.updated",
                done,
                created=t0 + 600,
                previous_attributes={"charges_enabled": False},
            ),
            event(
                "account.updated",
                payouts,
                created=t0 + 3600,
                previous_attributes={"payouts_enabled": False},
            ),
        ],
    )


def customer_updates(t0: int, customer: str | None = None) -> Lifecycle:
    """customer.updated twice: contact details, then a new default card."""
    cus = obj("customer", id=customer or new_id("cus"), created=t0 - 86400, discount=None)
    named = _step(cus, email="jenny.rosen@example.com", name="Jenny Rosen")
    return Lifecycle(
        "customer_updates",
        [
            event(
                "customer.updated",
                named,
                created=t0,
                previous_attributes={"email": None, "name": None},
            ),
            event(
                "customer.updated",
                _step(named, default_source=new_id("card")),
                created=t0 + 120,
                previous_attributes={"default_source": None},
            ),
        ],
    )


LIFECYCLES = {
    "pi_succeeds": pi_succeeds,
    "pi_fails_then_succeeds": pi_fails_then_succeeds,
    "pi_manual_capture": pi_manual_capture,
    "pi_canceled": pi_canceled,
    "dispute_won": dispute_won,
    "dispute_lost": dispute_lost,
    "card_expiry_updates": card_expiry_updates,
    "payment_method_updates": payment_method_updates,
    "account_requirements": account_requirements,
    "customer_updates": customer_updates,
}


def lifecycle(name: str, t0: int | None = None) -> Lifecycle:
    return LIFECYCLES[name](t0 if t0 is not None else int(time.time()) - 40 * 86400)
