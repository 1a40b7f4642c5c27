"""Issue 9, item 5: the smaller fixes to bounded input.

Numbers are ASCII digits or a clear 400 (never a 500 from ``int('²')``); a revoked signing
secret stops verifying within a second in every serving process.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.stripe.client import insecure_base_problem
from merchant_backend.stripe.signature import SignatureRejected, parse_header
from tests import stripe_factory as sf
from tests.conftest import LIVE_SECRET_KEY, SECRET_KEY, SIGNING_SECRET, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe
from tests.stripe_helpers import ACCOUNT, aimed_at
from tests.webhook_support import post, store_rows, url


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=ab",  # SUPERSCRIPT TWO: str.isdigit() says yes, int() says no
        "t=١٢٣,v1=ab",  # Arabic-Indic digits
        "t=１２,v1=ab",  # fullwidth digits
        "t=12,v1=é",  # compare_digest refuses non-ASCII text
        "t=12,v1=abc²",
    ],
)
def test_a_header_with_other_digits_is_malformed_not_a_crash(header: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        parse_header(header)
    assert caught.value.reason == "malformed_signature"


def test_a_unicode_digit_in_the_header_answers_400_over_http(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    before = store_rows(runtime.engine)
    raw = sf.body(sf.event("payment_intent.created", sf.payment_intent()))
    # HTTP headers are bytes; Starlette reads them as Latin-1, where 0xB2 is '²'.
    for header in (b"t=\xb2,v1=ab", b"t=12,v1=\xe9", b"t=\xb2\xb3\xb9,v1=" + b"0" * 64):
        r = client.post(url(connected.id), content=raw, headers={"Stripe-Signature": header})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "malformed_signature"
    assert store_rows(runtime.engine) == before


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(header=st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_any_signature_header_is_400_never_500(
    client: TestClient, connected: MerchantCtx, header: bytes
) -> None:
    raw = sf.body(sf.event("payment_intent.created", sf.payment_intent()))
    r = client.post(
        url(connected.id), content=raw, headers={"Stripe-Signature": header.strip() or b"x"}
    )
    assert r.status_code == 400, r.text


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def test_a_revoked_signing_secret_stops_verifying_within_a_second_in_every_process(
    runtime: Runtime, connected: MerchantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr("merchant_backend.clock.now", clock)
    new_secret = "whsec_" + secrets.token_hex(16)

    def deliver(c: TestClient, secret: str) -> Any:
        return post(
            c, connected.id, sf.event("customer.updated", sf.obj("customer")), secret=secret
        )

    # Two serving processes, each with its own credential cache, on one database.
    with (
        TestClient(create_app(runtime, run_worker=False)) as one,
        TestClient(create_app(runtime, run_worker=False)) as two,
    ):
        for c in (one, two):
            assert deliver(c, SIGNING_SECRET).status_code == 200  # both caches hold the secret
        # A third process (the CLI's roll-secret --old-valid-for 0) revokes it; nobody tells
        # the serving processes.
        with db.write(runtime.engine) as conn:
            datasets.roll_signing_secret(
                conn, runtime.keys.get(), connected.id, "stage", new_secret, 0
            )
        clock.t += 1.0
        for c in (one, two):
            r = deliver(c, SIGNING_SECRET)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_signature"
            assert deliver(c, new_secret).status_code == 200


def test_live_keys_are_never_sent_to_a_plain_http_api_base() -> None:
    assert insecure_base_problem("http://api.stripe.example", LIVE_SECRET_KEY) is not None
    assert insecure_base_problem("HTTP://127.0.0.1:12111", "rk_live_" + "x" * 24) is not None
    assert insecure_base_problem("https://api.stripe.com", LIVE_SECRET_KEY) is None
    # Test keys may go to a local fake.
    assert insecure_base_problem("http://127.0.0.1:12111", SECRET_KEY) is None


def test_a_live_call_against_a_plain_http_base_is_refused_before_any_request(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx
) -> None:
    add_data_set(runtime, merchant.id, "live")
    fake.add_key(LIVE_SECRET_KEY, ACCOUNT)
    runtime.settings = aimed_at(runtime.settings, fake.url)  # http://127.0.0.1:…
    with TestClient(create_app(runtime, run_worker=False)) as c:
        r = c.post(f"/api/v1/merchants/{merchant.id}/stripe/live/verify", headers=merchant.auth)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "stripe_api_base_insecure"
    assert "HTTPS" in r.json()["error"]["message"]
    assert fake.requests == []
