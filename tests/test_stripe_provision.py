"""Provisioning the webhook endpoint: new, existing with missing events, live with a bad URL."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.stripe.provision import live_url_problem
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests import stripe_factory as sf
from tests.conftest import LIVE_SECRET_KEY, SECRET_KEY, SIGNING_SECRET, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import cli_env, run_cli
from tests.stripe_helpers import ACCOUNT, aimed_at, our_url, provision_webhook


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


def stored_secret(runtime: Runtime, merchant_id: str, env: str = "stage") -> str | None:
    with db.read(runtime.engine) as conn:
        found = datasets.secrets(conn, runtime.keys.for_token, merchant_id, env)
    assert found is not None
    return found.signing_secret


def deliver(client: TestClient, merchant_id: str, secret: str) -> int:
    """A Stripe-signed delivery to our endpoint, as Stripe would send it."""
    evt = sf.event("customer.updated", sf.obj("customer"))
    raw, header = sf.signed(evt, secret)
    r = client.post(
        f"/webhooks/stripe/{merchant_id}/stage", content=raw, headers={"Stripe-Signature": header}
    )
    return r.status_code


def test_new_endpoint_has_exactly_the_15_events_and_its_secret_is_stored(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    r = client.post(
        f"/api/v1/merchants/{stage.id}/stripe/stage/webhook-endpoint", headers=stage.auth
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["action"] == "created"
    assert body["signing_secret_stored"] is True
    [create] = [q for q in fake.requests if q.method == "POST"]
    assert create.path == "/v1/webhook_endpoints"
    assert create.one("url") == our_url(runtime.settings, stage.id)
    assert create.array("enabled_events") == list(HANDLED_EVENTS)
    assert create.one("api_version") == "2026-07-29.dahlia"
    assert create.headers["idempotency-key"].startswith("mb-")
    # Stripe's secret is stored encrypted and never shown.
    secret = stored_secret(runtime, stage.id)
    assert secret is not None and secret != SIGNING_SECRET and secret.startswith("whsec_")
    assert secret not in r.text
    shown = client.get(f"/api/v1/merchants/{stage.id}/stripe/stage", headers=stage.auth).json()
    assert shown["webhook_endpoint_id"] == body["endpoint"]["id"]
    assert shown["webhook_signing_secret"] == f"whsec_…{secret[-4:]}"
    # Deliveries signed with the new secret are accepted at once; the old one stays valid for
    # a day, in case another endpoint still signs with it.
    assert deliver(client, stage.id, secret) == 200
    assert deliver(client, stage.id, SIGNING_SECRET) == 200
    assert shown["previous_signing_secret"]["expires_at"] > time.time() + 86000


def test_existing_endpoint_gets_the_missing_events_not_a_second_endpoint(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    mine = ["charge.failed", "payment_intent.succeeded", "customer.updated"]
    endpoint = fake.add_endpoint(our_url(runtime.settings, stage.id), mine)
    r = client.post(
        f"/api/v1/merchants/{stage.id}/stripe/stage/webhook-endpoint", headers=stage.auth
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "updated"
    added = [e for e in HANDLED_EVENTS if e not in mine]
    assert body["added_events"] == added
    assert "the stored signing secret is kept" in body["message"]
    [update] = [q for q in fake.requests if q.method == "POST"]
    assert update.path == f"/v1/webhook_endpoints/{endpoint['id']}"
    # The merchant's own subscription (charge.failed) stays.
    assert update.array("enabled_events") == mine + added
    assert update.headers["idempotency-key"]
    assert len(fake.endpoints) == 1
    assert stored_secret(runtime, stage.id) == SIGNING_SECRET
    # Nothing left to do: a second run changes nothing at Stripe.
    again = provision_webhook(runtime, stage.id, "stage")
    assert again["action"] == "unchanged"
    assert [q.method for q in fake.requests].count("POST") == 1


def test_disabled_endpoint_is_enabled_again_and_a_missing_secret_is_explained(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx, client: TestClient
) -> None:
    fake.add_key(SECRET_KEY, ACCOUNT)
    r = client.put(
        f"/api/v1/merchants/{merchant.id}/stripe/stage",
        headers=merchant.auth,
        json={
            "account_id": ACCOUNT,
            "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
            "secret_key": SECRET_KEY,
        },
    )
    assert r.status_code == 200
    fake.add_endpoint(our_url(runtime.settings, merchant.id), ["*"], status="disabled")
    result = provision_webhook(runtime, merchant.id, "stage")
    assert result["action"] == "updated"
    assert result["added_events"] == []
    [update] = [q for q in fake.requests if q.method == "POST"]
    assert update.one("disabled") == "false"
    assert update.array("enabled_events") == []
    assert result["signing_secret_stored"] is False
    assert "store it with 'stripe set --signing-secret -'" in result["message"]


@pytest.mark.parametrize(
    ("public_url", "fragment"),
    [
        ("http://shop.example", "need an HTTPS URL"),
        ("https://127.0.0.1:8000", "loopback or private"),
        ("https://localhost", "points at this machine"),
        ("https://10.1.2.3", "loopback or private"),
        ("https://[::1]", "loopback or private"),
    ],
)
def test_live_refuses_a_url_stripe_cannot_reach(
    public_url: str,
    fragment: str,
    fake: FakeStripe,
    runtime: Runtime,
    merchant: MerchantCtx,
    settings: Settings,
) -> None:
    add_data_set(runtime, merchant.id, "live")
    fake.add_key(LIVE_SECRET_KEY, ACCOUNT)
    env = cli_env(
        settings, MERCHANT_BACKEND_STRIPE_API_BASE=fake.url, MERCHANT_BACKEND_PUBLIC_URL=public_url
    )
    result = run_cli(
        ["stripe", "provision-webhook", "--merchant", merchant.id, "--env", "live"], env
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert '"field": "public_url"' in result.stderr
    assert fake.requests == []


def test_live_refusal_over_http_is_422(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx, settings: Settings
) -> None:
    from merchant_backend.asgi import create_app

    add_data_set(runtime, merchant.id, "live")
    runtime.settings = settings.model_copy(update={"public_url": "http://127.0.0.1:8000"})
    with TestClient(create_app(runtime, run_worker=False)) as c:
        r = c.post(
            f"/api/v1/merchants/{merchant.id}/stripe/live/webhook-endpoint", headers=merchant.auth
        )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "public_url"
    assert "HTTPS" in r.json()["error"]["message"]
    assert fake.requests == []


def test_live_url_rule() -> None:
    assert live_url_problem("https://pay.shop.example/webhooks/stripe/m/live") is None
    assert live_url_problem("https://93.184.215.14/webhooks/stripe/m/live") is None
    assert live_url_problem("https://0.0.0.0/x") is not None
    assert live_url_problem("https://dev.localhost/x") is not None


def test_stage_may_use_a_local_url_and_the_cli_prints_the_result(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, settings: Settings
) -> None:
    env = cli_env(
        settings,
        MERCHANT_BACKEND_STRIPE_API_BASE=fake.url,
        MERCHANT_BACKEND_PUBLIC_URL="http://127.0.0.1:8000",
    )
    result = run_cli(["stripe", "provision-webhook", "--merchant", stage.id, "--env", "stage"], env)
    assert result.exit_code == 0, result.output
    assert '"action": "created"' in result.stdout
    assert "whsec_" not in result.stdout
    assert fake.endpoints[0]["url"] == f"http://127.0.0.1:8000/webhooks/stripe/{stage.id}/stage"


def test_stripe_errors_while_provisioning_are_mapped(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    fake.keys.clear()
    r = client.post(
        f"/api/v1/merchants/{stage.id}/stripe/stage/webhook-endpoint", headers=stage.auth
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "stripe_key_rejected"
    assert SECRET_KEY not in r.text
    fake.add_key(SECRET_KEY, ACCOUNT, {"POST /v1/webhook_endpoints": "rak_webhook_write"})
    r = client.post(
        f"/api/v1/merchants/{stage.id}/stripe/stage/webhook-endpoint", headers=stage.auth
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "stripe_permission_denied"
    assert "grant it the 'rak_webhook_write' permission" in r.json()["error"]["message"]
    assert stored_secret(runtime, stage.id) == SIGNING_SECRET
