"""The webhook POST skips FastAPI's stack (for speed) but must answer exactly as the route did."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from merchant_backend.api import webhooks
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/webhooks/stripe/mer_1/stage", {"merchant_id": "mer_1", "env": "stage"}),
        ("/webhooks/stripe/mer_1/stage/", None),
        ("/webhooks/stripe/mer_1/stage/x", None),
        ("/webhooks/stripe/mer_1", None),
        ("/webhooks/stripe//stage", None),
        ("/webhooks/stripe/mer_1/", None),
        ("/webhooks/other/mer_1/stage", None),
    ],
)
def test_only_exact_webhook_urls_take_the_fast_path(
    path: str, expected: dict[str, str] | None
) -> None:
    assert webhooks.match(path) == expected


def test_an_unexpected_error_answers_the_apps_json_500_and_stores_nothing(
    client: TestClient, connected: MerchantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(webhooks, "parse_event", broken)
    evt = sf.event("payment_intent.succeeded", sf.obj("payment_intent"))
    raw, header = sf.signed(evt, SIGNING_SECRET)
    client_no_raise = TestClient(client.app, raise_server_exceptions=False)
    r = client_no_raise.post(
        f"/webhooks/stripe/{connected.id}/stage",
        content=raw,
        headers={"Stripe-Signature": header},
    )
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    r = client.get(
        f"/api/v1/merchants/{connected.id}/stage/events/{evt['id']}", headers=connected.auth
    )
    assert r.status_code == 404


def test_other_methods_and_near_miss_paths_still_go_through_the_router(
    client: TestClient, connected: MerchantCtx
) -> None:
    url = f"/webhooks/stripe/{connected.id}/stage"
    assert client.get(url).status_code == 405
    assert client.post(url + "/extra", content=b"{}").status_code == 404


def test_the_first_of_two_signature_headers_is_the_one_checked_as_on_the_route(
    client: TestClient, connected: MerchantCtx
) -> None:
    """The fast path reads the ASGI headers itself; Starlette's ``Headers.get`` (the route's)
    gives the first of a repeated header, so a valid signature after a forged one is refused."""
    evt = sf.event("payment_intent.succeeded", sf.obj("payment_intent"))
    raw, header = sf.signed(evt, SIGNING_SECRET)
    forged = header.replace("v1=", "v1=0", 1)[: len(header)]
    url = f"/webhooks/stripe/{connected.id}/stage"
    twice = [("Stripe-Signature", forged), ("Stripe-Signature", header)]
    r = client.post(url, content=raw, headers=twice)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_signature"
    r = client.post(url, content=raw, headers=list(reversed(twice)))
    assert r.status_code == 200
    assert r.json() == {"received": True, "duplicate": False}


def test_under_a_root_path_the_route_takes_the_delivery_and_answers_the_same(
    client: TestClient, connected: MerchantCtx
) -> None:
    """Behind a proxy that mounts the service under a prefix, the fast path steps aside and
    the Starlette route serves the POST: the same checks, the same answers."""
    prefixed = TestClient(client.app, root_path="/mb")
    evt = sf.event("payment_intent.succeeded", sf.obj("payment_intent"))
    raw, header = sf.signed(evt, SIGNING_SECRET)
    url = f"/webhooks/stripe/{connected.id}/stage"
    r = prefixed.post(url, content=raw, headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_signature"  # the HMAC is checked before the time
    r = prefixed.post(url, content=raw, headers={"Stripe-Signature": header})
    assert r.status_code == 200
    assert r.json() == {"received": True, "duplicate": False}
    r = prefixed.post(url, content=raw, headers={"Stripe-Signature": header})
    assert r.json() == {"received": True, "duplicate": True}
    r = client.get(
        f"/api/v1/merchants/{connected.id}/stage/events/{evt['id']}", headers=connected.auth
    )
    assert r.status_code == 200
