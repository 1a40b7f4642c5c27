"""Distinct Stripe events for the benchmark, built from Stripe's published example objects.

Lifecycles as the tests use them (payment intents that succeed, fail then succeed, are captured
or canceled; disputes won and lost; customer, card, payment method and account updates), each
over its own objects, so a run of N events touches many objects, as a real account does.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from merchant_backend.stripe.signature import sign

FIXTURES = Path(
    os.environ.get(
        "MERCHANT_BACKEND_STRIPE_FIXTURES",
        # The same copies of Stripe's objects as the tests (tests/fixtures/stripe/SOURCE.md).
        Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stripe",
    )
)

Event = dict[str, Any]


@cache
def _fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def obj(name: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_fixture(name))
    data.update(overrides)
    return data


class Builder:
    """Makes event envelopes with unique ids; ``tag`` keeps ids of separate runs apart."""

    def __init__(self, tag: str, *, livemode: bool = False, account: str | None = None) -> None:
        self.tag = tag
        self.livemode = livemode
        self.account = account
        self.serial = 0
        self.envelope: dict[str, Any] = json.loads(_fixture("event"))

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}_bench{self.tag}{self.serial:09d}"

    def event(self, type_: str, data_object: dict[str, Any], created: int) -> Event:
        env = copy.copy(self.envelope)
        env["id"] = self.next_id("evt")
        env["type"] = type_
        env["created"] = created
        env["livemode"] = self.livemode
        env["api_version"] = "2026-07-29.dahlia"
        env["data"] = {"object": {**data_object, "livemode": self.livemode}}
        if self.account is not None:
            env["account"] = self.account
        return env


def _pi_lifecycle(b: Builder, t: int, kind: int) -> list[Event]:
    pid = b.next_id("pi")
    base = obj("payment_intent", id=pid, amount=2000, amount_received=0, amount_capturable=0)

    def pi(**kw: Any) -> dict[str, Any]:
        return {**base, **kw}

    created = b.event("payment_intent.created", pi(status="requires_payment_method"), t)
    if kind == 0:  # created -> processing -> succeeded
        return [
            created,
            b.event("payment_intent.processing", pi(status="processing"), t + 1),
            b.event(
                "payment_intent.succeeded", pi(status="succeeded", amount_received=2000), t + 2
            ),
        ]
    if kind == 1:  # failed -> retried -> succeeded
        error = {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "type": "card_error",
        }
        return [
            created,
            b.event(
                "payment_intent.payment_failed",
                pi(status="requires_payment_method", last_payment_error=error),
                t + 1,
            ),
            b.event("payment_intent.processing", pi(status="processing"), t + 2),
            b.event(
                "payment_intent.succeeded", pi(status="succeeded", amount_received=2000), t + 3
            ),
        ]
    if kind == 2:  # manual capture
        return [
            created,
            b.event(
                "payment_intent.amount_capturable_updated",
                pi(status="requires_capture", amount_capturable=2000, capture_method="manual"),
                t + 1,
            ),
            b.event(
                "payment_intent.succeeded", pi(status="succeeded", amount_received=2000), t + 2
            ),
        ]
    return [created, b.event("payment_intent.canceled", pi(status="canceled"), t + 1)]


def _dispute_lifecycle(b: Builder, t: int, won: bool) -> list[Event]:
    did = b.next_id("dp")
    base = obj("dispute", id=did, payment_intent=b.next_id("pi"), balance_transactions=[])
    txn = obj("balance_transaction", amount=-1500, net=-1500, id=b.next_id("txn"))
    back = obj("balance_transaction", amount=1500, net=1500, id=b.next_id("txn"))

    def dp(**kw: Any) -> dict[str, Any]:
        return {**base, **kw}

    steps = [
        b.event("charge.dispute.created", dp(status="needs_response"), t),
        b.event(
            "charge.dispute.funds_withdrawn",
            dp(status="needs_response", balance_transactions=[txn]),
            t + 1,
        ),
        b.event(
            "charge.dispute.updated", dp(status="under_review", balance_transactions=[txn]), t + 2
        ),
    ]
    if not won:
        steps.append(
            b.event("charge.dispute.closed", dp(status="lost", balance_transactions=[txn]), t + 3)
        )
        return steps
    steps.append(
        b.event("charge.dispute.closed", dp(status="won", balance_transactions=[txn]), t + 3)
    )
    steps.append(
        b.event(
            "charge.dispute.funds_reinstated",
            dp(status="won", balance_transactions=[txn, back]),
            t + 4,
        )
    )
    return steps


def _customer_lifecycle(b: Builder, t: int) -> list[Event]:
    cid = b.next_id("cus")
    card = obj("card", id=b.next_id("card"), customer=cid)
    pm = obj("payment_method", id=b.next_id("pm"), customer=cid)
    pm_card = {**pm["card"], "exp_month": 12, "exp_year": 2031, "last4": "4444"}
    return [
        b.event("customer.updated", obj("customer", id=cid, email="a@example.com"), t),
        b.event("customer.updated", obj("customer", id=cid, email="b@example.com"), t + 1),
        b.event("customer.source.updated", {**card, "exp_year": 2030}, t + 1),
        b.event("payment_method.automatically_updated", {**pm, "card": pm_card}, t + 2),
    ]


def _account_update(b: Builder, t: int, account_id: str) -> list[Event]:
    due = ["external_account"] if t % 2 else []
    return [
        b.event(
            "account.updated",
            obj(
                "account",
                id=account_id,
                requirements={**obj("account")["requirements"], "currently_due": due},
            ),
            t,
        )
    ]


_MIX: tuple[Callable[[Builder, int, str], list[Event]], ...] = (
    lambda b, t, _a: _pi_lifecycle(b, t, 0),
    lambda b, t, _a: _pi_lifecycle(b, t, 1),
    lambda b, t, _a: _pi_lifecycle(b, t, 0),
    lambda b, t, _a: _pi_lifecycle(b, t, 2),
    lambda b, t, _a: _pi_lifecycle(b, t, 3),
    lambda b, t, _a: _dispute_lifecycle(b, t, won=True),
    lambda b, t, _a: _pi_lifecycle(b, t, 0),
    lambda b, t, _a: _customer_lifecycle(b, t),
    lambda b, t, _a: _dispute_lifecycle(b, t, won=False),
    lambda b, t, a: _account_update(b, t, a),
)


def lifecycles(b: Builder, account_id: str, start: int) -> Iterator[Event]:
    """An endless stream of events: lifecycles one after the other, times moving forward."""
    t = start
    i = 0
    while True:
        yield from _MIX[i % len(_MIX)](b, t, account_id)
        i += 1
        t += 1


def take(b: Builder, account_id: str, n: int, start: int) -> list[Event]:
    out = []
    for evt in lifecycles(b, account_id, start):
        out.append(evt)
        if len(out) == n:
            break
    return out


def signed_bodies(events: list[Event], secret: str, timestamp: int) -> list[tuple[bytes, str]]:
    """Each event as Stripe sends it: compact JSON and its ``Stripe-Signature`` header."""
    out = []
    for evt in events:
        raw = orjson.dumps(evt)
        out.append((raw, sign(raw, secret, timestamp)))
    return out
