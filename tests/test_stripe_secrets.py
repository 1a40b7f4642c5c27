"""No secret key or signing secret in any output of the real processes, even at DEBUG.

The CLI and the service run as real processes (everything they print is what an operator's
terminal or log collector gets) and go through Stripe's failures: a rejected key, a restricted
key, rate limits, a decline, Stripe unreachable.
"""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from tests.conftest import SECRET_KEY, SIGNING_SECRET, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe, rate_limited
from tests.foundation_helpers import CLI_BIN, cli_env, free_port, run_cli_process, subprocess_env
from tests.stripe_helpers import ACCOUNT, aimed_at, wait_for


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


def secrets_in(text: str, *secrets: str) -> list[str]:
    return [s for s in secrets if s in text or s[8:] in text]


def test_cli_output_never_holds_a_secret(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx, settings: Settings
) -> None:
    add_data_set(runtime, merchant.id, "stage")
    env = cli_env(
        settings,
        MERCHANT_BACKEND_STRIPE_API_BASE=fake.url,
        MERCHANT_BACKEND_LOG_LEVEL="DEBUG",
        MERCHANT_BACKEND_STRIPE_MAX_NETWORK_RETRIES="1",
    )
    who = ["--merchant", merchant.id, "--env", "stage"]
    outputs = []
    rejected = run_cli_process(["stripe", "verify", *who], env)  # key unknown to Stripe: 401
    assert rejected.returncode == 1
    expected = "Stripe rejected the secret key for acct_1PgafTB7WZ01zgkW (sk_test_…4242)"
    assert expected in rejected.stdout
    outputs.append(rejected)
    fake.add_key(SECRET_KEY, ACCOUNT, {"GET /v1/account": "rak_accounts_kyc_basic_read"})
    outputs.append(run_cli_process(["stripe", "verify", *who], env))
    fake.add_key(SECRET_KEY, ACCOUNT)
    created = run_cli_process(["stripe", "provision-webhook", *who], env)
    assert created.returncode == 0, created.stderr
    outputs.append(created)
    with db.read(runtime.engine) as conn:
        found = datasets.secrets(conn, runtime.keys.for_token, merchant.id, "stage")
    assert found is not None and found.signing_secret not in (None, SIGNING_SECRET)
    new_secret = str(found.signing_secret)
    fake.fail_next(429, rate_limited(), times=2)
    limited = run_cli_process(["reconcile", *who], env)
    assert limited.returncode == 1
    assert '"code": "stripe_rate_limited"' in limited.stderr
    outputs.append(limited)
    for out in outputs:
        text = out.stdout + out.stderr
        assert secrets_in(text, SECRET_KEY, SIGNING_SECRET, new_secret) == [], text
        assert "Traceback" not in text


def test_service_output_never_holds_a_secret(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx, settings: Settings
) -> None:
    add_data_set(runtime, merchant.id, "stage")
    port = free_port()
    env = cli_env(
        settings,
        MERCHANT_BACKEND_STRIPE_API_BASE=fake.url,
        MERCHANT_BACKEND_LOG_LEVEL="DEBUG",
        MERCHANT_BACKEND_STRIPE_MAX_NETWORK_RETRIES="1",
    )
    proc = subprocess.Popen(
        [str(CLI_BIN), "serve", "--port", str(port), "--no-worker"],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1/merchants/{merchant.id}/stage/payment-intents"
        with httpx.Client(headers=merchant.auth, timeout=30) as http:

            def listening() -> bool:
                assert proc.poll() is None, "serve exited"
                try:
                    return http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for("the service to listen", listening, timeout=30)
            body = {"amount": 1000, "currency": "usd"}
            assert http.post(base, json=body).status_code == 502  # key rejected
            fake.add_key(SECRET_KEY, ACCOUNT)
            declined = {
                **body,
                "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
                "confirm": True,
            }
            assert http.post(base, json=declined).status_code == 402
            fake.fail_next(429, rate_limited(), times=2)
            assert http.post(base, json=body).status_code == 503
            fake.stop()
            assert http.post(base, json=body).status_code == 502
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    text = out + err
    assert "stripe call failed" in text  # the failures were logged...
    assert secrets_in(text, SECRET_KEY, SIGNING_SECRET) == [], text  # ...without a secret
    assert "Traceback" not in text
