"""Payments through our API: what is sent to Stripe, and Stripe's errors mapped to our statuses.

The flows against a real stateful fake (localstripe) are in test_stripe_localstripe.py; here a
fake that answers in Stripe's documented shapes covers what localstripe cannot produce (a
decline with its decline code and PaymentIntent, 401, 429, a timeout, Stripe unreachable).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, objects
from merchant_backend.stripe import client as stripe_client
from tests.conftest import SECRET_KEY, MerchantCtx
from tests.fake_stripe import FakeStripe, rate_limited
from tests.foundation_helpers import free_port
from tests.stripe_helpers import ACCOUNT, aimed_at


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url, stripe_timeout=0.5)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe_client, "RATE_LIMIT_FIRST_DELAY", 0.01)


def url(m: MerchantCtx, tail: str = "") -> str:
    return f"/api/v1/merchants/{m.id}/stage/payment-intents{tail}"


def test_only_given_parameters_are_sent_and_the_callers_key_reaches_stripe(
    fake: FakeStripe, stage: MerchantCtx, client: TestClient
) -> None:
    r = client.post(
        url(stage),
        headers={**stage.auth, "Idempotency-Key": "order-1001"},
        json={"amount": 2500, "currency": "EUR"},
    )
    assert r.status_code == 200, r.text
    [create] = fake.requests
    assert create.path == "/v1/payment_intents"
    assert create.form == {"amount": ["2500"], "currency": ["eur"]}
    assert create.headers["idempotency-key"] == "order-1001"
    assert create.headers["stripe-version"] == "2026-07-29.dahlia"
    body = r.json()
    assert body["object"]["status"] == "requires_payment_method"
    assert body["client_secret"].startswith(body["id"] + "_secret_")
    assert body["publishable_key"] == "pk_test_TYooMQauvdEDq54NiTphI7jx"
    assert body["last_event_id"] is None


def test_all_parameters_and_a_generated_key_when_the_caller_sends_none(
    fake: FakeStripe, stage: MerchantCtx, client: TestClient
) -> None:
    r = client.post(
        url(stage),
        headers=stage.auth,
        json={
            "amount": 1000,
            "currency": "usd",
            "customer": "cus_9s6XKzkNRiz8i3",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "description": "Order 1002",
            "metadata": {"order": "1002"},
            "confirm": True,
        },
    )
    assert r.status_code == 200, r.text
    create, confirm = fake.requests
    assert create.form["customer"] == ["cus_9s6XKzkNRiz8i3"]
    assert create.form["capture_method"] == ["manual"]
    assert create.form["description"] == ["Order 1002"]
    assert create.form["metadata[order]"] == ["1002"]
    assert "confirm" not in create.form
    assert confirm.path == f"/v1/payment_intents/{r.json()['id']}/confirm"
    key = create.headers["idempotency-key"]
    assert key.startswith("mb-")
    assert confirm.headers["idempotency-key"] == key + ":confirm"


def test_a_decline_is_402_with_the_decline_code_and_the_failed_intent_is_synced(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    r = client.post(
        url(stage),
        headers={**stage.auth, "Idempotency-Key": "order-1003"},
        json={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
            "confirm": True,
        },
    )
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "insufficient_funds"
    assert error["message"] == "Your card has insufficient funds."
    pi_id = error["payment_intent"]
    # Stripe's error carried the PaymentIntent: nothing more was fetched.
    assert fake.paths() == ["/v1/payment_intents", f"/v1/payment_intents/{pi_id}/confirm"]
    with db.read(runtime.engine) as conn:
        synced = objects.get(conn, stage.id, "stage", "payment_intent", pi_id)
    assert synced is not None
    assert synced.data["status"] == "requires_payment_method"
    assert synced.data["last_payment_error"]["decline_code"] == "insufficient_funds"


def test_rate_limit_is_retried_with_the_same_key_then_503(
    fake: FakeStripe, stage: MerchantCtx, client: TestClient, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"stripe_max_network_retries": 2})
    fake.fail_next(429, rate_limited(), times=2)
    r = client.post(url(stage), headers=stage.auth, json={"amount": 500, "currency": "usd"})
    assert r.status_code == 200, r.text
    assert len(fake.requests) == 3
    assert len({q.headers["idempotency-key"] for q in fake.requests}) == 1
    fake.requests.clear()
    fake.fail_next(429, rate_limited(), times=3)
    r = client.post(url(stage), headers=stage.auth, json={"amount": 500, "currency": "usd"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "stripe_rate_limited"
    assert "still did after 2 retries" in r.json()["error"]["message"]
    assert len(fake.requests) == 3


def test_stripe_too_slow_is_504(fake: FakeStripe, stage: MerchantCtx, client: TestClient) -> None:
    fake.hang = True
    r = client.post(url(stage), headers=stage.auth, json={"amount": 500, "currency": "usd"})
    fake.release.set()
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "stripe_timeout"
    assert "did not answer within 0.5 s" in r.json()["error"]["message"]


def test_stripe_unreachable_is_502(
    stage: MerchantCtx, client: TestClient, runtime: Runtime
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    runtime.settings = runtime.settings.model_copy(update={"stripe_api_base": closed})
    r = client.post(url(stage), headers=stage.auth, json={"amount": 500, "currency": "usd"})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "stripe_unreachable"
    assert closed in r.json()["error"]["message"]


def test_rejected_key_and_stripe_refusals(
    fake: FakeStripe, stage: MerchantCtx, client: TestClient
) -> None:
    fake.keys.clear()
    r = client.post(url(stage), headers=stage.auth, json={"amount": 500, "currency": "usd"})
    assert r.status_code == 502
    assert r.json()["error"]["message"].startswith(
        "Stripe rejected the secret key for acct_1PgafTB7WZ01zgkW (sk_test_…4242)"
    )
    assert SECRET_KEY not in r.text
    fake.add_key(SECRET_KEY, ACCOUNT)
    r = client.post(url(stage, "/pi_Missing/capture"), headers=stage.auth)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "stripe_not_found"
    fake.fail_next(
        400,
        {
            "error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with.",
            }
        },
    )
    r = client.post(
        url(stage),
        headers={**stage.auth, "Idempotency-Key": "order-1"},
        json={"amount": 700, "currency": "usd"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_key_reused"


def test_request_validation_before_stripe(
    fake: FakeStripe, stage: MerchantCtx, client: TestClient
) -> None:
    for body in (
        {"amount": 0, "currency": "usd"},
        {"amount": 100, "currency": "dollars"},
        {"amount": 100, "currency": "usd", "capture_method": "later"},
        {"amount": 100, "currency": "usd", "surprise": 1},
        {"amount": 100, "currency": "usd", "metadata": {"k" * 41: "v"}},
    ):
        r = client.post(url(stage), headers=stage.auth, json=body)
        assert r.status_code == 422, body
    r = client.post(
        url(stage),
        headers={**stage.auth, "Idempotency-Key": "k" * 201},
        json={"amount": 100, "currency": "usd"},
    )
    assert r.status_code == 422
    assert fake.requests == []


def test_a_replayed_answer_does_not_roll_the_projection_back(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    """A client retrying an old request gets Stripe's saved answer (requires_capture); the
    PaymentIntent has been captured since, and that must stay what we show."""
    order = {
        "amount": 3000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "capture_method": "manual",
        "confirm": True,
    }
    headers = {**stage.auth, "Idempotency-Key": "order-2001"}
    first = client.post(url(stage), headers=headers, json=order)
    assert first.json()["object"]["status"] == "requires_capture"
    pi_id = first.json()["id"]
    captured = client.post(url(stage, f"/{pi_id}/capture"), headers=stage.auth)
    assert captured.json()["object"]["status"] == "succeeded"
    fake.requests.clear()
    retried = client.post(url(stage), headers=headers, json=order)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == pi_id
    assert retried.json()["object"]["status"] == "succeeded"
    with db.read(runtime.engine) as conn:
        synced = objects.get(conn, stage.id, "stage", "payment_intent", pi_id)
    assert synced is not None and synced.data["status"] == "succeeded"
    # Stripe replayed both steps; the current state was read, nothing was charged again.
    assert [(q.method, q.path) for q in fake.requests] == [
        ("POST", "/v1/payment_intents"),
        ("GET", f"/v1/payment_intents/{pi_id}"),
        ("POST", f"/v1/payment_intents/{pi_id}/confirm"),
        ("GET", f"/v1/payment_intents/{pi_id}"),
    ]
