"""The HTTP API of outbound notifications: destinations (a merchant's and the operator's) and
the change feed. On SQLite and PostgreSQL (``--db``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, objects
from merchant_backend.sync.handlers import snapshot_of
from tests import stripe_factory as sf
from tests.conftest import ADMIN_TOKEN
from tests.outbound_support import Receiver
from tests.webhook_support import connected_merchant

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    s = runtime.settings.model_copy(
        update={"outbound_allow_private": True, "outbound_timeout": 2.0}
    )
    app = create_app(Runtime(s, engine=runtime.engine), run_worker=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def rcv() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def change(runtime: Runtime, merchant_id: str, n: int) -> None:
    snap = snapshot_of(
        "customer",
        sf.obj("customer", id=f"cus_api{n}"),
        event_id=f"evt_api{n}",
        event_type="customer.updated",
        event_created=1_760_000_000,
    )
    with db.write(runtime.engine) as conn:
        objects.apply_snapshots(conn, merchant_id, "stage", [snap])


def test_a_merchants_destinations_over_the_api(
    api: TestClient, runtime: Runtime, rcv: Receiver
) -> None:
    m = connected_merchant(runtime)
    base = f"/api/v1/merchants/{m.id}/stage/destinations"
    r = api.post(
        base,
        headers=m.auth,
        json={"url": rcv.url, "description": "shop", "object_types": ["customer"]},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    made = r.json()
    assert made["secret"].startswith("whsec_") and made["object_types"] == ["customer"]
    rcv.secret = made["secret"]
    one = f"{base}/{made['id']}"
    listed = api.get(base, headers=m.auth).json()["data"]
    assert [d["id"] for d in listed] == [made["id"]] and "secret" not in listed[0]
    assert api.get(one, headers=m.auth).json()["description"] == "shop"

    r = api.post(f"{one}/test", headers=m.auth)
    assert r.status_code == 200 and r.json()["outcome"] == "delivered", r.text
    assert rcv.received[-1].message["type"] == "test"

    r = api.patch(one, headers=m.auth, json={"enabled": False})
    assert r.json()["enabled"] is False and r.json()["disabled_reason"] == "disabled by a user"
    r = api.patch(one, headers=m.auth, json={"enabled": True, "description": "shop 2"})
    assert r.json()["enabled"] is True and r.json()["description"] == "shop 2"

    r = api.post(f"{one}/rotate-secret", headers=m.auth)
    assert r.status_code == 200 and r.json()["secret"] != made["secret"]

    log = api.get(f"{one}/deliveries", headers=m.auth).json()
    assert [(d["state"], d["merchant_id"]) for d in log["data"]] == [("delivered", m.id)]
    assert (
        log["attempts"][0]["status_code"] == 200
        and log["destination"]["deliveries"]["delivered"] == 1
    )
    msg_id = log["data"][0]["message_id"]
    r = api.post(f"{one}/replay", headers=m.auth, json={"message_id": msg_id})
    assert r.json() == {"replayed": 1}
    assert api.get(f"{one}/deliveries", headers=m.auth).json()["data"][0]["state"] == "pending"

    assert api.delete(one, headers=m.auth).status_code == 204
    assert api.get(one, headers=m.auth).status_code == 404


def test_refusals(api: TestClient, runtime: Runtime) -> None:
    m, other = connected_merchant(runtime), connected_merchant(runtime, "Other")
    base = f"/api/v1/merchants/{m.id}/live/destinations"
    r = api.post(
        base, headers=m.auth, json={"url": "http://hooks.example/x", "object_types": ["charge"]}
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["error"]["errors"]} == {"url", "object_types"}
    assert (
        api.post(base, headers=m.auth, json={"url": "https://h.example/", "bogus": 1}).status_code
        == 422
    )
    assert api.get(base, headers=m.auth).json()["data"] == []
    # Another merchant's token sees nothing of it; a merchant cannot use the operator's routes.
    assert api.get(base, headers=other.auth).status_code == 404
    assert api.get("/api/v1/destinations?env=live", headers=m.auth).status_code == 403
    assert api.get(f"{base}/dst_nope", headers=m.auth).status_code == 404


def test_the_operators_installation_wide_destinations(
    api: TestClient, runtime: Runtime, rcv: Receiver
) -> None:
    r = api.post("/api/v1/destinations?env=stage", headers=ADMIN, json={"url": rcv.url})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["merchant_id"] is None
    rcv.secret = made["secret"]
    listed = api.get("/api/v1/destinations?env=stage", headers=ADMIN).json()["data"]
    assert [d["id"] for d in listed] == [made["id"]]
    assert api.get("/api/v1/destinations?env=live", headers=ADMIN).json()["data"] == []
    one = f"/api/v1/destinations/{made['id']}?env=stage"
    assert (
        api.post(f"/api/v1/destinations/{made['id']}/test?env=stage", headers=ADMIN).json()[
            "outcome"
        ]
        == "delivered"
    )
    assert api.get(one, headers=ADMIN).json()["deliveries"]["delivered"] == 1
    # Not visible as any merchant's.
    m = connected_merchant(runtime)
    assert (
        api.get(
            f"/api/v1/merchants/{m.id}/stage/destinations/{made['id']}", headers=ADMIN
        ).status_code
        == 404
    )
    assert api.delete(one, headers=ADMIN).status_code == 204


def test_the_feed_over_http_with_a_long_poll(api: TestClient, runtime: Runtime) -> None:
    m = connected_merchant(runtime)
    url = f"/api/v1/merchants/{m.id}/stage/changes"
    for n in range(5):
        change(runtime, m.id, n)
    first = api.get(url, headers=m.auth, params={"limit": 3}).json()
    assert [x["sequence"] for x in first["data"]] == [1, 2, 3] and first["has_more"] is True
    rest = api.get(url, headers=m.auth, params={"after": first["next_cursor"]}).json()
    assert [x["sequence"] for x in rest["data"]] == [4, 5] and rest["has_more"] is False
    assert rest["data"][0]["type"] == "customer.changed"
    assert api.get(url, headers=m.auth, params={"after": "x1"}).status_code == 422
    assert api.get(url, headers=m.auth, params={"wait": 31}).status_code == 422

    out: dict[str, Any] = {}
    ready = threading.Event()

    def poll() -> None:
        ready.set()
        out["r"] = api.get(url, headers=m.auth, params={"after": rest["next_cursor"], "wait": 20})
        out["at"] = time.monotonic()

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert ready.wait(10)
    committed = time.monotonic()
    change(runtime, m.id, 99)
    waiter.join(25)
    assert [x["sequence"] for x in out["r"].json()["data"]] == [6]
    assert out["at"] - committed < 1.0


def test_the_openapi_document_names_the_routes(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    assert "object.changed" in doc["webhooks"]
    assert {"id", "type", "merchant_id", "env", "sequence", "created", "data"} <= set(
        doc["components"]["schemas"]["Message"]["properties"]
    )
    for path in (
        "/api/v1/merchants/{merchant_id}/{env}/destinations",
        "/api/v1/merchants/{merchant_id}/{env}/destinations/{destination_id}",
        "/api/v1/merchants/{merchant_id}/{env}/destinations/{destination_id}/rotate-secret",
        "/api/v1/merchants/{merchant_id}/{env}/destinations/{destination_id}/test",
        "/api/v1/merchants/{merchant_id}/{env}/destinations/{destination_id}/deliveries",
        "/api/v1/merchants/{merchant_id}/{env}/changes",
        "/api/v1/destinations",
        "/api/v1/destinations/{destination_id}",
    ):
        assert path in paths, path


def test_destinations_are_bounded_per_merchant_and_environment(
    api: TestClient, runtime: Runtime
) -> None:
    """Every change goes to each destination: without a bound one merchant's list could fill
    the dispatcher for everyone. The bound is per owner and environment."""
    from merchant_backend.services.notifications import MAX_DESTINATIONS

    m, other = connected_merchant(runtime), connected_merchant(runtime, "Other")
    base = f"/api/v1/merchants/{m.id}/stage/destinations"
    body = {"url": "http://127.0.0.1:9/hook"}
    for _ in range(MAX_DESTINATIONS):
        assert api.post(base, headers=m.auth, json=body).status_code == 201
    refused = api.post(base, headers=m.auth, json=body)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert (
        error["field"] == "url" and f"at most {MAX_DESTINATIONS} destinations" in error["message"]
    )
    assert len(api.get(base, headers=m.auth).json()["data"]) == MAX_DESTINATIONS  # none added
    # Another merchant and the installation each have their own allowance.
    theirs = f"/api/v1/merchants/{other.id}/stage/destinations"
    assert api.post(theirs, headers=other.auth, json=body).status_code == 201
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert api.post("/api/v1/destinations?env=stage", headers=admin, json=body).status_code == 201
