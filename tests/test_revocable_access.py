"""Access can be taken back (issue 9): rotate a merchant's token (CLI, API, the operator's web
page), disable and enable a merchant, admin web sessions end with the admin token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from tests import stripe_factory as sf
from tests.conftest import ADMIN_TOKEN, MerchantCtx, make_merchant
from tests.foundation_helpers import cli_env, rows, run_cli
from tests.web_support import csrf_of, form_fields, hidden, sign_in
from tests.webhook_support import post_ok


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    """API client and browser at once: https, so the __Host- cookies are sent back."""
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _payment_intents(client: TestClient, m: MerchantCtx, token: str | None = None) -> Any:
    auth = {"Authorization": f"Bearer {token or m.token}"}
    return client.get(f"/api/v1/merchants/{m.id}/stage/payment-intents", headers=auth)


def _signed_in_page(client: TestClient, m: MerchantCtx) -> int:
    return client.get(f"/m/{m.id}/stage", follow_redirects=False).status_code


def _cli(settings: Settings, *args: str) -> Any:
    result = run_cli(list(args), cli_env(settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_rotate_token_on_the_command_line(
    settings: Settings, runtime: Runtime, client: TestClient, connected: MerchantCtx
) -> None:
    other = make_merchant(runtime, "Other")
    sign_in(client, connected.token)
    assert _signed_in_page(client, connected) == 200

    out = _cli(settings, "merchants", "rotate-token", "--merchant", connected.id)
    assert set(out) == {"id", "api_token"} and out["id"] == connected.id
    # The old token answers 401 at once, the new one works, the web session has ended.
    assert _payment_intents(client, connected).status_code == 401
    assert _payment_intents(client, connected, out["api_token"]).status_code == 200
    assert _signed_in_page(client, connected) == 303
    # Nobody else is touched.
    assert _payment_intents(client, other).status_code == 200

    unknown = run_cli(
        ["merchants", "rotate-token", "--merchant", "mer_0000000000000000"], cli_env(settings)
    )
    assert unknown.exit_code == 2
    assert json.loads(unknown.stderr)["error"]["code"] == "not_found"


def test_rotate_token_through_the_api_is_for_the_admin_only(
    client: TestClient, connected: MerchantCtx, admin_auth: dict[str, str]
) -> None:
    url = f"/api/v1/merchants/{connected.id}/rotate-token"
    assert client.post(url, headers=connected.auth).status_code == 403
    r = client.post(url, headers=admin_auth)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "api_token"}
    assert r.headers["Cache-Control"] == "no-store"
    assert _payment_intents(client, connected).status_code == 401
    assert _payment_intents(client, connected, r.json()["api_token"]).status_code == 200
    missing = client.post("/api/v1/merchants/mer_0000000000000000/rotate-token", headers=admin_auth)
    assert missing.status_code == 404


def test_rotate_token_button_on_the_operators_page(
    app: Any, client: TestClient, connected: MerchantCtx
) -> None:
    merchant_browser = TestClient(app, base_url="https://testserver")
    sign_in(merchant_browser, connected.token)
    sign_in(client, ADMIN_TOKEN)
    csrf = csrf_of(client, "/merchants")
    assert f'action="/merchants/{connected.id}/rotate-token"' in client.get("/merchants").text
    refused = client.post(f"/merchants/{connected.id}/rotate-token", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert _payment_intents(client, connected).status_code == 200
    form = form_fields(client.get("/merchants").text, f"/merchants/{connected.id}/rotate-token")
    assert form["csrf_token"] == csrf
    r = client.post(f"/merchants/{connected.id}/rotate-token", data=form)
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [303]
    assert r.headers["Cache-Control"] == "no-store"
    assert "old token no longer works" in r.text
    assert _payment_intents(client, connected).status_code == 401
    assert _signed_in_page(merchant_browser, connected) == 303


def test_disable_and_enable_keep_everything_and_webhooks_keep_coming(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    connected: MerchantCtx,
    admin_auth: dict[str, str],
) -> None:
    sign_in(client, connected.token)
    before = rows(runtime.engine)

    out = _cli(settings, "merchants", "disable", "--merchant", connected.id)
    assert out["id"] == connected.id and out["disabled"] is True
    r = _payment_intents(client, connected)
    assert r.status_code == 403 and r.json()["error"]["code"] == "merchant_disabled"
    assert _signed_in_page(client, connected) == 303
    # A second browser on the same app (no `with`: the app's lifespan is the fixture's).
    browser = TestClient(client.app, base_url="https://testserver")
    form = browser.get("/sign-in")
    assert form.status_code == 200
    refused = browser.post(
        "/sign-in",
        data={"token": connected.token, "sign_in_token": hidden(form.text, "sign_in_token")},
        follow_redirects=False,
    )
    assert refused.status_code == 403 and "access off" in refused.text
    # The operator still sees the merchant and its data.
    assert (
        client.get(
            f"/api/v1/merchants/{connected.id}/stage/payment-intents", headers=admin_auth
        ).status_code
        == 200
    )
    # Stripe's events are still taken and stored: money events are never dropped.
    evt = sf.LIFECYCLES["pi_succeeds"](1_760_000_000).events[0]
    post_ok(client, connected.id, evt)

    out = _cli(settings, "merchants", "enable", "--merchant", connected.id)
    assert out["disabled"] is False
    assert _payment_intents(client, connected).status_code == 200
    after = rows(runtime.engine)
    # Nothing was lost: every row from before is still there (plus the event and its session
    # bookkeeping).
    for table in ("merchants", "stripe_datasets"):
        assert [r[:4] for r in after[table]] == [r[:4] for r in before[table]]
    assert any(evt["id"] in r for r in map(tuple, after["events"]))


def test_admin_web_sessions_end_when_the_admin_token_changes(
    runtime: Runtime, settings: Settings, client: TestClient
) -> None:
    sign_in(client, ADMIN_TOKEN)
    assert client.get("/merchants", follow_redirects=False).status_code == 200
    changed = Runtime(
        settings.model_copy(update={"admin_token": SecretStr("n" * 40)}), engine=runtime.engine
    )
    with TestClient(create_app(changed, run_worker=False), base_url="https://testserver") as after:
        after.cookies.update(client.cookies)
        assert after.get("/merchants", follow_redirects=False).status_code == 303
    # The same token again still opens its session (nothing else ended it).
    assert client.get("/merchants", follow_redirects=False).status_code == 200


def test_serve_refuses_a_short_admin_token(settings: Settings) -> None:
    short = "too-short-" + "x" * 10
    result = run_cli(
        ["serve", "--port", "1"], cli_env(settings, MERCHANT_BACKEND_ADMIN_TOKEN=short)
    )
    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert "at least 32" in error["message"]
    assert "secrets.token_urlsafe(32)" in error["message"]
    assert short not in result.stderr
