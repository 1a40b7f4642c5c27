"""The written-down ordering rule (sync/ordering.py), case by case: which of two snapshots of
one object is kept. Pure; the property tests show the same through the whole path."""

from __future__ import annotations

from typing import Any

import pytest

from merchant_backend.sync.ordering import order_key
from tests import stripe_factory as sf


def key(evt: dict[str, Any]) -> str:
    obj = evt["data"]["object"]
    return order_key(obj["object"], obj, evt["created"], evt["type"], evt["id"])


def newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return key(a) > key(b)


def test_a_later_second_wins_whatever_the_status() -> None:
    """A payment can go back (processing, then the bank declines): time decides first."""
    pi = sf.payment_intent()
    processing = sf.event("payment_intent.processing", {**pi, "status": "processing"}, created=10)
    failed = sf.event(
        "payment_intent.payment_failed",
        {**pi, "last_payment_error": sf.card_declined("ch_1")},
        created=11,
    )
    assert newer(failed, processing)


@pytest.mark.parametrize(
    ("name", "earlier", "later"),
    [
        ("pi_succeeds", 1, 2),  # processing < succeeded
        ("pi_fails_then_succeeds", 0, 1),  # created < payment_failed
        ("pi_canceled", 1, 2),  # requires_capture < canceled
        ("dispute_won", 0, 1),  # created < funds_withdrawn
        ("dispute_won", 3, 4),  # closed (won) < funds_reinstated
    ],
)
def test_within_one_second_the_lifecycle_order_wins(name: str, earlier: int, later: int) -> None:
    events = sf.lifecycle(name).events
    a, b = events[earlier], events[later]
    assert a["created"] == b["created"], "the case is about events of the same second"
    assert newer(b, a)
    # And the event ids (adversarial in the factory) would have said the opposite.
    assert a["id"] > b["id"]


def test_terminal_status_outranks_any_other_in_the_same_second() -> None:
    pi = sf.payment_intent()
    for status in ("requires_payment_method", "processing", "requires_capture"):
        other = sf.event("payment_intent.processing", {**pi, "status": status}, created=5)
        done = sf.event("payment_intent.succeeded", {**pi, "status": "succeeded"}, created=5)
        assert newer(done, other), status
    dispute = sf.obj("dispute")
    for final in ("won", "lost", "warning_closed"):
        review = sf.event(
            "charge.dispute.updated", {**dispute, "status": "under_review"}, created=5
        )
        closed = sf.event("charge.dispute.closed", {**dispute, "status": final}, created=5)
        assert newer(closed, review), final


def test_an_api_snapshot_gives_way_to_the_event_of_the_same_state() -> None:
    pi = sf.obj("payment_intent", status="succeeded")
    from_api = order_key("payment_intent", pi, 5, None, None)
    evt = sf.event("payment_intent.succeeded", pi, created=5)
    assert key(evt) > from_api


def test_the_key_is_a_total_order_repeats_are_equal() -> None:
    evt = sf.event("customer.updated", sf.obj("customer"), created=5)
    assert key(evt) == key(evt)
    other = sf.event("customer.updated", sf.obj("customer"), created=5)
    assert key(evt) != key(other)  # same second, no status: the event id decides, stably
