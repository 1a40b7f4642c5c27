"""Each lifecycle of the 15 events, in Stripe's order, through the real path: a signed POST to
the webhook endpoint, the worker, then the read API, step by step."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx
from tests.webhook_support import post_ok


def api(merchant: MerchantCtx, path: str, env: str = "stage") -> str:
    return f"/api/v1/merchants/{merchant.id}/{env}/{path}"


def read(client: TestClient, merchant: MerchantCtx, collection: str, stripe_id: str) -> Any:
    path = "account" if collection == "account" else f"{collection}/{stripe_id}"
    r = client.get(api(merchant, path), headers=merchant.auth)
    assert r.status_code == 200, r.text
    return r.json()


def apply(client: TestClient, merchant: MerchantCtx, worker: Worker, evt: dict[str, Any]) -> None:
    post_ok(client, merchant.id, evt)
    assert worker.drain() == 1


@pytest.mark.parametrize("name", sorted(sf.LIFECYCLES))
def test_each_step_shows_the_object_of_its_event(
    client: TestClient, connected: MerchantCtx, worker: Worker, name: str
) -> None:
    lc = sf.lifecycle(name)
    for evt in lc.events:
        apply(client, connected, worker, evt)
        data = evt["data"]["object"]
        got = read(client, connected, sf.collection_of(evt["type"]), data["id"])
        assert got["object"] == data, f"after {evt['type']}"
        assert got["last_event_id"] == evt["id"]
        assert got["last_event_created"] == evt["created"]
        assert got["synced_at"] > 0
        r = client.get(api(connected, f"events/{evt['id']}"), headers=connected.auth)
        assert r.json()["state"] == "applied"
        assert r.json()["attempts"] == 1
    # The history of each object: every event applied to it, oldest first (events of the
    # same second in no particular order).
    for (collection, stripe_id), _ in lc.final_objects().items():
        got = read(client, connected, collection, stripe_id)["history"]
        mine = [e for e in lc.events if e["data"]["object"]["id"] == stripe_id]
        assert sorted(h["event_id"] for h in got) == sorted(e["id"] for e in mine)
        assert [h["created"] for h in got] == sorted(e["created"] for e in mine)
        assert sorted(h["type"] for h in got) == sorted(e["type"] for e in mine)


def test_payment_fails_then_succeeds_on_retry(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    lc = sf.pi_fails_then_succeeds(1_760_000_000, customer="cus_QXg1o8vcGmoR32")
    created, failed, processing, succeeded = lc.events
    pi_id = created["data"]["object"]["id"]
    apply(client, connected, worker, created)
    apply(client, connected, worker, failed)
    got = read(client, connected, "payment-intents", pi_id)["object"]
    assert got["status"] == "requires_payment_method"
    assert got["last_payment_error"]["code"] == "card_declined"
    assert got["last_payment_error"]["decline_code"] == "insufficient_funds"
    apply(client, connected, worker, processing)
    assert read(client, connected, "payment-intents", pi_id)["object"]["status"] == "processing"
    apply(client, connected, worker, succeeded)
    got = read(client, connected, "payment-intents", pi_id)
    assert got["object"]["status"] == "succeeded"
    assert got["object"]["last_payment_error"] is None
    assert got["object"]["amount_received"] == got["object"]["amount"]
    # created and payment_failed share a second: the timeline has them first, in either order.
    types = [h["type"] for h in got["history"]]
    assert sorted(types[:2]) == ["payment_intent.created", "payment_intent.payment_failed"]
    assert types[2:] == ["payment_intent.processing", "payment_intent.succeeded"]
    # Linked to its customer: the list filter finds it.
    r = client.get(
        api(connected, "payment-intents"),
        params={"customer": "cus_QXg1o8vcGmoR32"},
        headers=connected.auth,
    )
    assert [p["id"] for p in r.json()["data"]] == [pi_id]


def test_manual_capture(client: TestClient, connected: MerchantCtx, worker: Worker) -> None:
    created, capturable, captured = sf.pi_manual_capture(1_760_000_000).events
    pi_id = created["data"]["object"]["id"]
    apply(client, connected, worker, created)
    apply(client, connected, worker, capturable)
    got = read(client, connected, "payment-intents", pi_id)["object"]
    assert (got["status"], got["amount_capturable"], got["capture_method"]) == (
        "requires_capture",
        1099,
        "manual",
    )
    apply(client, connected, worker, captured)
    got = read(client, connected, "payment-intents", pi_id)["object"]
    assert (got["status"], got["amount_capturable"], got["amount_received"]) == (
        "succeeded",
        0,
        1099,
    )


def test_cancel(client: TestClient, connected: MerchantCtx, worker: Worker) -> None:
    lc = sf.pi_canceled(1_760_000_000)
    for evt in lc.events:
        apply(client, connected, worker, evt)
    got = read(client, connected, "payment-intents", lc.events[0]["data"]["object"]["id"])
    assert got["object"]["status"] == "canceled"
    assert got["object"]["cancellation_reason"] == "requested_by_customer"
    assert got["object"]["amount_capturable"] == 0


def test_dispute_won_withdraws_then_reinstates_funds(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    t0 = 1_760_000_000
    created, withdrawn, updated, closed, reinstated = sf.dispute_won(t0, "pi_disputed").events
    dp_id = created["data"]["object"]["id"]

    def dispute() -> Any:
        return read(client, connected, "disputes", dp_id)

    apply(client, connected, worker, created)
    got = dispute()
    assert got["object"]["status"] == "needs_response"
    assert got["object"]["reason"] == "product_not_received"
    assert got["object"]["evidence_details"]["due_by"] == t0 + 7 * 86400
    assert got["object"]["payment_intent"] == "pi_disputed"
    assert got["funds"]["amount_withdrawn"] == 0
    apply(client, connected, worker, withdrawn)
    assert dispute()["funds"] == {
        "amount_withdrawn": 1000,
        "amount_reinstated": 0,
        "fee": sf.DISPUTE_FEE,
        "net": -1000 - sf.DISPUTE_FEE,
    }
    apply(client, connected, worker, updated)
    got = dispute()
    assert got["object"]["status"] == "under_review"
    assert got["object"]["evidence_details"]["has_evidence"] is True
    assert got["object"]["evidence"]["uncategorized_text"] == "Signed delivery receipt attached."
    apply(client, connected, worker, closed)
    assert dispute()["object"]["status"] == "won"
    assert dispute()["funds"]["amount_reinstated"] == 0
    apply(client, connected, worker, reinstated)
    got = dispute()
    assert got["object"]["status"] == "won"
    assert got["funds"] == {"amount_withdrawn": 1000, "amount_reinstated": 1000, "fee": 0, "net": 0}
    assert len(got["history"]) == 5
    # Disputes of a payment are found from the payment's side too.
    r = client.get(api(connected, "disputes"), params={"status": "won"}, headers=connected.auth)
    assert [d["id"] for d in r.json()["data"]] == [dp_id]


def test_dispute_lost_keeps_the_money_withdrawn(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    lc = sf.dispute_lost(1_760_000_000)
    for evt in lc.events:
        apply(client, connected, worker, evt)
    got = read(client, connected, "disputes", lc.events[0]["data"]["object"]["id"])
    assert got["object"]["status"] == "lost"
    assert got["object"]["reason"] == "fraudulent"
    assert got["funds"]["amount_withdrawn"] == 1000
    assert got["funds"]["amount_reinstated"] == 0


def test_card_expiry_update_is_linked_to_its_customer(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    customer = sf.customer_updates(1_760_000_000)
    cus_id = customer.events[0]["data"]["object"]["id"]
    cards = sf.card_expiry_updates(1_760_000_000, customer=cus_id)
    card_id = cards.events[0]["data"]["object"]["id"]
    for evt in [*customer.events, *cards.events]:
        apply(client, connected, worker, evt)
    got = read(client, connected, "payment-methods", card_id)["object"]
    assert (got["object"], got["exp_month"], got["exp_year"]) == ("card", 11, 2031)
    assert got["customer"] == cus_id
    r = client.get(
        api(connected, "payment-methods"), params={"customer": cus_id}, headers=connected.auth
    )
    assert [p["id"] for p in r.json()["data"]] == [card_id]
    cus = read(client, connected, "customers", cus_id)["object"]
    assert cus["email"] == "jenny.rosen@example.com"
    assert cus["default_source"].startswith("card_")


def test_payment_method_automatically_updated_shows_new_card_details(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    first, second = sf.payment_method_updates(1_760_000_000).events
    pm_id = first["data"]["object"]["id"]
    apply(client, connected, worker, first)
    card = read(client, connected, "payment-methods", pm_id)["object"]["card"]
    assert (card["exp_month"], card["exp_year"], card["last4"]) == (9, 2032, "4242")
    apply(client, connected, worker, second)
    card = read(client, connected, "payment-methods", pm_id)["object"]["card"]
    assert (card["exp_month"], card["exp_year"], card["last4"]) == (2, 2033, "1881")


def test_account_requirements_and_charges_enabled(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    fewer, done, payouts = sf.account_requirements(1_760_000_000).events
    r = client.get(api(connected, "account"), headers=connected.auth)
    assert r.status_code == 404
    apply(client, connected, worker, fewer)
    acct = read(client, connected, "account", "")["object"]
    assert acct["charges_enabled"] is False
    assert acct["requirements"]["currently_due"] == [
        "external_account",
        "tos_acceptance.date",
        "tos_acceptance.ip",
    ]
    apply(client, connected, worker, done)
    acct = read(client, connected, "account", "")["object"]
    assert acct["charges_enabled"] is True
    assert acct["payouts_enabled"] is False
    assert acct["requirements"]["currently_due"] == []
    assert acct["requirements"]["disabled_reason"] is None
    apply(client, connected, worker, payouts)
    assert read(client, connected, "account", "")["object"]["payouts_enabled"] is True


@pytest.mark.parametrize(
    ("name", "index"),
    [("pi_succeeds", 2), ("pi_manual_capture", 1), ("dispute_won", 3), ("dispute_lost", 2)],
)
def test_an_object_first_seen_through_a_later_event_is_created_from_it(
    client: TestClient, connected: MerchantCtx, worker: Worker, name: str, index: int
) -> None:
    evt = sf.lifecycle(name).events[index]
    apply(client, connected, worker, evt)
    data = evt["data"]["object"]
    got = read(client, connected, sf.collection_of(evt["type"]), data["id"])
    assert got["object"] == data
    assert [h["event_id"] for h in got["history"]] == [evt["id"]]


def test_an_older_event_arriving_late_does_not_overwrite(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    created, processing, succeeded = sf.pi_succeeds(1_760_000_000).events
    pi_id = created["data"]["object"]["id"]
    apply(client, connected, worker, succeeded)
    apply(client, connected, worker, created)
    apply(client, connected, worker, processing)
    got = read(client, connected, "payment-intents", pi_id)
    assert got["object"]["status"] == "succeeded"
    assert got["last_event_id"] == succeeded["id"]
    # ...but every event is in the object's history.
    assert {h["event_id"] for h in got["history"]} == {
        e["id"] for e in (created, processing, succeeded)
    }
