from __future__ import annotations

from fastapi.testclient import TestClient

from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx


def test_signed_event_is_stored_then_applied(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    pi = sf.obj("payment_intent", status="succeeded")
    evt = sf.event("payment_intent.succeeded", pi)
    raw, header = sf.signed(evt, SIGNING_SECRET)
    url = f"/webhooks/stripe/{connected.id}/stage"
    r = client.post(url, content=raw, headers={"Stripe-Signature": header})
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    r = client.post(url, content=raw, headers={"Stripe-Signature": header})
    assert r.json()["duplicate"] is True
    assert worker.drain() == 1
    r = client.get(
        f"/api/v1/merchants/{connected.id}/stage/payment-intents/{pi['id']}", headers=connected.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["object"]["status"] == "succeeded"
    assert r.json()["last_event_id"] == evt["id"]
    r = client.get(
        f"/api/v1/merchants/{connected.id}/stage/events/{evt['id']}", headers=connected.auth
    )
    assert r.json()["state"] == "applied"
