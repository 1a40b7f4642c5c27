"""Who sees what: a merchant's token reaches only that merchant (404 for any other, exactly
like a missing one), a wrong or missing token is 401, the operator's token sees all, and a
stage view never shows live data.

The routes are enumerated from the application itself, so a route added later with
``{merchant_id}`` in its path is covered without touching this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import (
    ADMIN_TOKEN,
    LIVE_SIGNING_SECRET,
    SIGNING_SECRET,
    MerchantCtx,
    add_data_set,
    make_merchant,
)
from tests.foundation_helpers import VALID_STAGE, rows

try:  # FastAPI ≥ 0.13x keeps included routers nested; this walks them
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI lists every route flat

    def iter_route_contexts(routes: Any) -> Iterator[Any]:  # type: ignore[misc]
        yield from routes


WEBHOOK_PREFIX = "/webhooks/"  # Stripe's door: authenticated by signature, not by token


@dataclass(frozen=True)
class Route:
    path: str
    method: str

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


def merchant_routes(app: FastAPI) -> list[Route]:
    found: set[Route] = set()
    for ctx in iter_route_contexts(app.routes):
        path = getattr(ctx, "path_format", None) or getattr(ctx, "path", None)
        if not path or "{merchant_id}" not in path or path.startswith(WEBHOOK_PREFIX):
            continue
        for method in getattr(ctx, "methods", None) or ():
            if method != "HEAD":
                found.add(Route(path, method))
    return sorted(found, key=lambda r: (r.path, r.method))


@dataclass
class Seeded:
    merchant: MerchantCtx
    ids: dict[str, dict[str, str]]  # env -> kind -> Stripe id
    account_ids: dict[str, str]


def _deliver(client: TestClient, merchant_id: str, env: str, evt: dict[str, Any]) -> None:
    secret = LIVE_SIGNING_SECRET if env == "live" else SIGNING_SECRET
    raw, header = sf.signed(evt, secret)
    r = client.post(
        f"/webhooks/stripe/{merchant_id}/{env}", content=raw, headers={"Stripe-Signature": header}
    )
    assert r.status_code == 200, r.text


def seed(client: TestClient, runtime: Runtime, worker: Worker, name: str) -> Seeded:
    """A merchant with both data sets and one synced object of each kind in each env."""
    merchant = make_merchant(runtime, name)
    accounts = {"stage": f"acct_1{name}Stage", "live": f"acct_1{name}Live"}
    ids: dict[str, dict[str, str]] = {}
    for env in ("stage", "live"):
        add_data_set(runtime, merchant.id, env, account_id=accounts[env])
        live = env == "live"
        tag = f"{name}{env}"
        kinds = {
            "payment_intent": ("payment_intent.succeeded", f"pi_{tag}1"),
            "customer": ("customer.updated", f"cus_{tag}1"),
            "payment_method": ("payment_method.automatically_updated", f"pm_{tag}1"),
            "dispute": ("charge.dispute.created", f"dp_{tag}1"),
            "account": ("account.updated", accounts[env]),
        }
        ids[env] = {}
        for kind, (type_, object_id) in kinds.items():
            evt = sf.event(type_, sf.obj(kind, id=object_id), livemode=live)
            _deliver(client, merchant.id, env, evt)
            ids[env][kind] = object_id
            ids[env][f"event:{kind}"] = evt["id"]
        ids[env]["destination"] = _destination(runtime, merchant.id, env, tag)
    worker.drain()
    return Seeded(merchant, ids, accounts)


def _destination(runtime: Runtime, merchant_id: str, env: str, tag: str) -> str:
    """An outbound destination of the merchant (written to the store: no DNS is asked)."""
    from merchant_backend.store import db
    from merchant_backend.store import destinations as destination_store

    with db.write(runtime.engine) as conn:
        made = destination_store.create(
            conn,
            runtime.keys.get(),
            merchant_id=merchant_id,
            env=env,
            url=f"https://hooks.example/{tag}",
            description=tag,
            object_types=destination_store.OBJECT_TYPES,
            secret="whsec_" + "A" * 44,
        )
    return made.id


@pytest.fixture
def two(client: TestClient, runtime: Runtime, worker: Worker) -> tuple[Seeded, Seeded]:
    return seed(client, runtime, worker, "A"), seed(client, runtime, worker, "B")


_BY_SEGMENT = {
    "payment-intents": "payment_intent",
    "payments": "payment_intent",
    "customers": "customer",
    "payment-methods": "payment_method",
    "disputes": "dispute",
    "events": "event:payment_intent",
}


def fill(path: str, owner: Seeded, env: str = "stage") -> str:
    """The route's path with plausible values: ids of objects the owner really has."""
    parts = path.strip("/").split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        m = re.fullmatch(r"\{(\w+)(:\w+)?\}", part)
        if not m:
            out.append(part)
            continue
        name = m.group(1)
        previous = parts[i - 1] if i else ""
        if name == "merchant_id":
            out.append(owner.merchant.id)
        elif name == "env":
            out.append(env)
        elif name == "destination_id":
            out.append(owner.ids[env]["destination"])
        elif previous in _BY_SEGMENT:
            out.append(owner.ids[env][_BY_SEGMENT[previous]])
        elif "evt" in name or "event" in name:
            out.append(owner.ids[env]["event:payment_intent"])
        elif name.startswith("pi") or "payment" in name:
            out.append(owner.ids[env]["payment_intent"])
        else:
            out.append(f"{name}_plausible1")
    return "/" + "/".join(out)


def body_for(route: Route) -> dict[str, Any] | None:
    if route.method in ("GET", "DELETE"):
        return None
    if route.path.endswith("/stripe/{env}"):
        return {**VALID_STAGE, "secret_key": "sk_test_" + "x" * 24}
    if route.path.endswith("/payment-intents"):
        return {"amount": 1000, "currency": "usd"}
    return {}


def call(
    client: TestClient, route: Route, url: str, headers: dict[str, str]
) -> Any:  # httpx.Response
    body = body_for(route)
    headers = {**headers, "Idempotency-Key": "access-test-1"}
    if body is None:
        return client.request(route.method, url, headers=headers, follow_redirects=False)
    return client.request(route.method, url, json=body, headers=headers, follow_redirects=False)


def test_the_enumeration_sees_the_contracts_routes(app: FastAPI) -> None:
    """Guards the walk over app.routes: if it found nothing, every sweep below would pass."""
    found = {(r.method, r.path) for r in merchant_routes(app)}
    for method, path in [
        ("GET", "/api/v1/merchants/{merchant_id}/stripe/{env}"),
        ("PUT", "/api/v1/merchants/{merchant_id}/stripe/{env}"),
        ("DELETE", "/api/v1/merchants/{merchant_id}/stripe/{env}"),
        ("GET", "/api/v1/merchants/{merchant_id}/{env}/payment-intents/{object_id}"),
        ("GET", "/api/v1/merchants/{merchant_id}/{env}/events"),
        ("POST", "/api/v1/merchants/{merchant_id}/{env}/events/{evt_id}/replay"),
    ]:
        assert (method, path) in found
    schema_paths = {p for p in app.openapi()["paths"] if "{merchant_id}" in p}
    assert schema_paths <= {r.path for r in merchant_routes(app)}


def test_a_merchant_token_gets_404_on_every_route_of_another_merchant(
    client: TestClient, app: FastAPI, runtime: Runtime, two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    before = rows(runtime.engine)
    secrets_of_b = [b.account_ids["stage"], b.account_ids["live"], *b.ids["stage"].values()]
    checked = 0
    for route in merchant_routes(app):
        for env in ("stage", "live"):
            url = fill(route.path, b, env)
            r = call(client, route, url, a.merchant.auth)
            where = f"{route.method} {url}"
            for value in secrets_of_b:
                if value not in url:
                    assert value not in r.text, where
            if route.is_api:
                assert r.status_code == 404, f"{where}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"] == "not_found", where
            else:
                # The web pages sign in with a session, not a bearer token: no page for B.
                assert not 200 <= r.status_code < 300, f"{where}: {r.status_code}"
            checked += 1
    assert checked >= 2 * 20
    # Nothing of B's changed (no replay, no delete, no data set written).
    assert rows(runtime.engine) == before


def test_another_merchants_404_is_the_same_as_a_missing_merchants(
    client: TestClient, two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    other = client.get(f"/api/v1/merchants/{b.merchant.id}/stripe/stage", headers=a.merchant.auth)
    missing = client.get(
        "/api/v1/merchants/mer_0000000000000000/stripe/stage", headers=a.merchant.auth
    )
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_the_owner_and_the_operator_see_the_same_routes(
    client: TestClient, app: FastAPI, two: tuple[Seeded, Seeded]
) -> None:
    """The control for the sweep above: those URLs do lead to B's data, for B and the admin."""
    _, b = two
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    gets = [r for r in merchant_routes(app) if r.is_api and r.method == "GET"]
    assert len(gets) >= 10
    for route in gets:
        for env in ("stage", "live"):
            url = fill(route.path, b, env)
            own = client.get(url, headers=b.merchant.auth)
            assert own.status_code == 200, f"{url}: {own.status_code} {own.text}"
            assert client.get(url, headers=admin).json() == own.json(), url


def test_the_operator_gets_404_for_a_merchant_that_does_not_exist(client: TestClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = client.get("/api/v1/merchants/mer_0000000000000000/stripe/stage", headers=admin)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer mbt_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ],
    ids=["none", "unknown", "empty", "basic", "no-scheme", "admin-plus-one"],
)
def test_a_wrong_or_missing_token_is_401_everywhere(
    client: TestClient,
    app: FastAPI,
    runtime: Runtime,
    merchant: MerchantCtx,
    headers: dict[str, str],
) -> None:
    add_data_set(runtime, merchant.id, "stage")
    owner = Seeded(
        merchant,
        {
            "stage": {
                k: "x_1"
                for k in (
                    "payment_intent",
                    "customer",
                    "payment_method",
                    "dispute",
                    "event:payment_intent",
                    "destination",
                )
            }
        },
        {},
    )
    routes = [r for r in merchant_routes(app) if r.is_api]
    routes += [Route("/api/v1/merchants", "GET"), Route("/api/v1/merchants", "POST")]
    for route in routes:
        url = fill(route.path, owner) if "{" in route.path else route.path
        r = call(client, route, url, headers)
        assert r.status_code == 401, f"{route.method} {url}: {r.status_code} {r.text}"
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"


def test_a_merchant_cannot_create_or_list_merchants(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    before = rows(runtime.engine)
    r = client.post("/api/v1/merchants", json={"name": "Sneaky"}, headers=merchant.auth)
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "forbidden",
        "message": "this needs the operator's admin token",
        "field": None,
    }
    assert client.get("/api/v1/merchants", headers=merchant.auth).status_code == 403
    assert rows(runtime.engine) == before


def test_the_operator_creates_merchants_whose_token_works_once_shown(
    client: TestClient, admin_auth: dict[str, str]
) -> None:
    r = client.post("/api/v1/merchants", json={"name": "  Corner Shop  "}, headers=admin_auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "Corner Shop"
    assert created["id"].startswith("mer_") and created["api_token"].startswith("mbt_")
    listed = client.get("/api/v1/merchants", headers=admin_auth).json()
    assert [m["id"] for m in listed["data"]] == [created["id"]]
    assert created["api_token"] not in str(listed)
    own = {"Authorization": f"Bearer {created['api_token']}"}
    url = f"/api/v1/merchants/{created['id']}/stripe/stage"
    assert client.get(url, headers=own).status_code == 404  # no data set yet, but allowed
    put = client.put(url, json={**VALID_STAGE, "secret_key": "sk_test_" + "x" * 24}, headers=own)
    assert put.status_code == 200, put.text
    assert (
        client.post("/api/v1/merchants", json={"name": "   "}, headers=admin_auth).status_code
        == 422
    )


def test_without_an_admin_token_configured_the_admin_api_is_off(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"admin_token": None})
    r = client.get("/api/v1/merchants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    # No token can be right, so the answer says why rather than "the token is not valid".
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_api_off"
    assert client.get("/api/v1/merchants", headers=merchant.auth).status_code == 403


def test_stage_never_shows_live_data(client: TestClient, two: tuple[Seeded, Seeded]) -> None:
    _, b = two
    base = f"/api/v1/merchants/{b.merchant.id}"
    auth = b.merchant.auth
    for env, other in (("stage", "live"), ("live", "stage")):
        data_set = client.get(f"{base}/stripe/{env}", headers=auth).json()
        assert data_set["account_id"] == b.account_ids[env]
        mode = "test" if env == "stage" else "live"
        assert data_set["publishable_key"].startswith(f"pk_{mode}_")
        assert data_set["secret_key"].startswith(f"sk_{mode}_")
        for collection, kind in [
            ("payment-intents", "payment_intent"),
            ("customers", "customer"),
            ("payment-methods", "payment_method"),
            ("disputes", "dispute"),
        ]:
            listed = client.get(f"{base}/{env}/{collection}", headers=auth).json()
            assert [o["object"]["id"] for o in listed["data"]] == [b.ids[env][kind]]
            assert all(o["object"]["livemode"] is (env == "live") for o in listed["data"])
            foreign = client.get(f"{base}/{env}/{collection}/{b.ids[other][kind]}", headers=auth)
            assert foreign.status_code == 404
        events = client.get(f"{base}/{env}/events?limit=100", headers=auth).json()["data"]
        own_events = {v for k, v in b.ids[env].items() if k.startswith("event:")}
        assert {e["id"] for e in events} == own_events
        other_event = b.ids[other]["event:payment_intent"]
        assert client.get(f"{base}/{env}/events/{other_event}", headers=auth).status_code == 404
        account = client.get(f"{base}/{env}/account", headers=auth).json()
        assert account["object"]["id"] == b.account_ids[env]
