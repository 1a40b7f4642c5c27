"""Guessing is slow and seen (issue 9): failed authentications on the API (merchant and admin
tokens) and on the web sign-in are limited per client address and per target, answered 429
with ``Retry-After``, logged with the client address and counted in ``/metrics``.

The limiter's time source and our clock seam are moved by the test; nothing sleeps.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import limits.storage.memory
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from merchant_backend import clock
from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, MerchantCtx
from tests.web_support import hidden

PER_ADDRESS = 3
PER_TARGET = 5


class FakeTime:
    def __init__(self) -> None:
        self.t = 1_900_000_000.0

    def time(self) -> float:
        return self.t


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    t = FakeTime()
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=t.time))
    monkeypatch.setattr(clock, "now", t.time)
    return t


@pytest.fixture
def limited_app(runtime: Runtime, fake_time: FakeTime) -> Any:
    runtime.settings = runtime.settings.model_copy(
        update={
            "auth_failures_per_address": f"{PER_ADDRESS}/minute",
            "auth_failures_per_target": f"{PER_TARGET}/minute",
        }
    )
    return create_app(runtime, run_worker=False)


@pytest.fixture
def browser(limited_app: Any) -> Iterator[TestClient]:
    with TestClient(limited_app, base_url="https://testserver", client=("203.0.113.5", 40000)) as c:
        yield c


def _from(app: Any, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


def _failures(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "merchant_backend_auth_failures_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def _read(client: TestClient, m: MerchantCtx, token: str) -> Any:
    return client.get(
        f"/api/v1/merchants/{m.id}/stage/payment-intents",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_wrong_api_tokens_from_one_address_end_in_429_until_the_window_passes(
    limited_app: Any, connected: MerchantCtx, fake_time: FakeTime
) -> None:
    refused, limited = _failures("api", "refused"), _failures("api", "limited")
    guesser = _from(limited_app, "203.0.113.7")
    with capture_logs() as logged:
        answers = [
            _read(guesser, connected, f"mbt_guess{i}").status_code for i in range(PER_ADDRESS)
        ]
    assert answers == [401] * PER_ADDRESS
    failed = [e for e in logged if e["event"] == "authentication failed"]
    assert [e["client"] for e in failed] == ["203.0.113.7"] * PER_ADDRESS
    assert all(e["target"] == f"merchant:{connected.id}" for e in failed)
    assert not any("mbt_guess" in repr(e) for e in logged)

    fake_time.t += 20
    over = _read(guesser, connected, "mbt_guess-next")
    assert over.status_code == 429
    assert over.headers["Retry-After"] == "40"
    assert over.json()["error"]["code"] == "rate_limited"
    # Over the limit, the address is refused before its token is looked at: a right token
    # from it gets 429 too, so a guesser cannot tell a hit from a miss.
    assert _read(guesser, connected, connected.token).status_code == 429
    # Another address, with the right token, is not affected.
    assert _read(_from(limited_app, "198.51.100.1"), connected, connected.token).status_code == 200
    assert _failures("api", "refused") == refused + PER_ADDRESS
    assert _failures("api", "limited") == limited + 2

    fake_time.t += 41
    assert _read(guesser, connected, connected.token).status_code == 200


def test_a_spread_guess_at_one_merchant_gets_429_but_its_owner_still_gets_in(
    limited_app: Any, connected: MerchantCtx, fake_time: FakeTime
) -> None:
    statuses = [
        _read(_from(limited_app, f"203.0.113.{i}"), connected, "mbt_wrong").status_code
        for i in range(PER_TARGET + 3)
    ]
    assert statuses == [401] * PER_TARGET + [429] * 3
    owner = _read(_from(limited_app, "198.51.100.2"), connected, connected.token)
    assert owner.status_code == 200


def test_admin_routes_and_metrics_count_guesses_at_the_admin_token(
    limited_app: Any, fake_time: FakeTime
) -> None:
    guesser = _from(limited_app, "203.0.113.8")
    for _ in range(PER_ADDRESS):
        r = guesser.post(
            "/api/v1/merchants", json={"name": "x"}, headers={"Authorization": "Bearer a" * 1}
        )
        assert r.status_code == 401
    r = guesser.get("/api/v1/merchants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    metrics = _from(limited_app, "198.51.100.3").get("/metrics").text
    assert "merchant_backend_auth_failures_total" in metrics


def _sign_in(client: TestClient, token: str) -> Any:
    form = client.get("/sign-in")
    assert form.status_code == 200
    return client.post(
        "/sign-in",
        data={"token": token, "sign_in_token": hidden(form.text, "sign_in_token")},
        follow_redirects=False,
    )


def test_wrong_tokens_on_the_sign_in_form_end_in_a_page_that_says_wait(
    browser: TestClient, connected: MerchantCtx, fake_time: FakeTime
) -> None:
    refused = _failures("web", "refused")
    with capture_logs() as logged:
        for i in range(PER_ADDRESS):
            assert _sign_in(browser, f"mbt_guess{i}").status_code == 401
    assert [e["client"] for e in logged if e["event"] == "authentication failed"] == [
        "203.0.113.5"
    ] * PER_ADDRESS
    assert _failures("web", "refused") == refused + PER_ADDRESS
    over = _sign_in(browser, connected.token)
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) == 60
    assert "Too many" in over.text and "60 seconds" in over.text
    fake_time.t += 61
    assert _sign_in(browser, connected.token).status_code == 303
