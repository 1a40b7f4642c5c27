"""The read side (issue 3, item 7): lists newest first with Stripe-style pagination, filters,
each merchant's token sees only its own data, and stage never shows live data."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import LIVE_SIGNING_SECRET, MerchantCtx
from tests.webhook_support import connected_merchant, post_ok

T0 = 1_760_000_000


def api(m: MerchantCtx, path: str, env: str = "stage") -> str:
    return f"/api/v1/merchants/{m.id}/{env}/{path}"


def get(client: TestClient, m: MerchantCtx, path: str, env: str = "stage", **params: Any) -> Any:
    r = client.get(api(m, path, env), params=params, headers=m.auth)
    assert r.status_code == 200, r.text
    return r.json()


def walk(client: TestClient, m: MerchantCtx, path: str, limit: int, **params: Any) -> list[Any]:
    """Every page of a list, following starting_after; checks has_more on the way."""
    pages: list[list[Any]] = []
    after: str | None = None
    while True:
        extra = {"starting_after": after} if after else {}
        page = get(client, m, path, limit=limit, **params, **extra)
        assert page["object"] == "list"
        assert page["url"] == api(m, path)
        assert len(page["data"]) <= limit
        pages.append(page["data"])
        if not page["has_more"]:
            return [item for p in pages for item in p]
        assert len(page["data"]) == limit
        after = page["data"][-1]["id"]


@pytest.fixture
def payments(client: TestClient, connected: MerchantCtx, worker: Worker) -> list[dict[str, Any]]:
    """23 payment intents: distinct creation times, plus three created in the same second;
    every third belongs to cus_A, and every fourth has succeeded."""
    pis = []
    for i in range(23):
        created = T0 + (i if i < 20 else 20)  # the last three share a second
        pi = sf.payment_intent(
            created=created,
            customer="cus_A" if i % 3 == 0 else "cus_B",
            status="succeeded" if i % 4 == 0 else "requires_payment_method",
        )
        type_ = "payment_intent.succeeded" if i % 4 == 0 else "payment_intent.created"
        post_ok(client, connected.id, sf.event(type_, pi, created=created + 1))
        pis.append(pi)
    worker.drain()
    return pis


def newest_first(objs: list[dict[str, Any]]) -> list[str]:
    return [o["id"] for o in sorted(objs, key=lambda o: (o["created"], o["id"]), reverse=True)]


@pytest.mark.parametrize("limit", [1, 7, 10, 23, 100])
def test_payment_intents_paginate_newest_first(
    client: TestClient, connected: MerchantCtx, payments: list[dict[str, Any]], limit: int
) -> None:
    got = walk(client, connected, "payment-intents", limit)
    assert [p["id"] for p in got] == newest_first(payments)
    assert got[0]["object"]["object"] == "payment_intent"
    assert {"last_event_id", "last_event_created", "synced_at"} <= set(got[0])


def test_default_page_is_ten(
    client: TestClient, connected: MerchantCtx, payments: list[dict[str, Any]]
) -> None:
    page = get(client, connected, "payment-intents")
    assert len(page["data"]) == 10
    assert page["has_more"] is True


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 101}, 422),
        ({"starting_after": "pi_notinthislist"}, 400),
    ],
)
def test_bad_page_parameters(
    client: TestClient, connected: MerchantCtx, params: dict[str, Any], status: int
) -> None:
    r = client.get(api(connected, "payment-intents"), params=params, headers=connected.auth)
    assert r.status_code == status
    assert "error" in r.json()


def test_payment_intents_filter_by_status_and_customer(
    client: TestClient, connected: MerchantCtx, payments: list[dict[str, Any]]
) -> None:
    succeeded = walk(client, connected, "payment-intents", 3, status="succeeded")
    assert [p["id"] for p in succeeded] == newest_first(
        [p for p in payments if p["status"] == "succeeded"]
    )
    of_a = walk(client, connected, "payment-intents", 4, customer="cus_A")
    assert [p["id"] for p in of_a] == newest_first(
        [p for p in payments if p["customer"] == "cus_A"]
    )
    both = get(client, connected, "payment-intents", customer="cus_A", status="succeeded")
    assert [p["id"] for p in both["data"]] == newest_first(
        [p for p in payments if p["customer"] == "cus_A" and p["status"] == "succeeded"]
    )
    assert get(client, connected, "payment-intents", customer="cus_nobody")["data"] == []


def test_events_list_newest_first_with_filters(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    won = sf.dispute_won(T0)
    paid = sf.pi_fails_then_succeeds(T0 + 10)
    poison = sf.event("payment_intent.created", sf.obj("customer"), created=T0 + 5)
    all_events = [*won.events, *paid.events, poison]
    for evt in all_events:
        post_ok(client, connected.id, evt)
    worker.drain()

    listed = walk(client, connected, "events", 4)
    assert [e["created"] for e in listed] == sorted(
        (e["created"] for e in all_events), reverse=True
    )
    assert {e["id"] for e in listed} == {e["id"] for e in all_events}
    first = listed[0]
    assert set(first) >= {
        "id",
        "type",
        "created",
        "received_at",
        "source",
        "attempts",
        "last_error",
        "state",
    }
    assert first["source"] == "webhook"

    by_type = walk(client, connected, "events", 2, type="charge.dispute.closed")
    assert [e["id"] for e in by_type] == [won.events[3]["id"]]
    failed = get(client, connected, "events", state="failed")["data"]
    assert [e["id"] for e in failed] == [poison["id"]]
    assert failed[0]["last_error"]
    applied = walk(client, connected, "events", 5, state="applied")
    assert len(applied) == len(all_events) - 1
    dispute_id = won.events[0]["data"]["object"]["id"]
    of_dispute = walk(client, connected, "events", 2, object_id=dispute_id)
    assert {e["id"] for e in of_dispute} == {e["id"] for e in won.events}
    assert [e["created"] for e in of_dispute] == sorted(
        (e["created"] for e in won.events), reverse=True
    )
    combined = get(client, connected, "events", object_id=dispute_id, type="charge.dispute.created")
    assert [e["id"] for e in combined["data"]] == [won.events[0]["id"]]
    r = client.get(api(connected, "events"), params={"state": "weird"}, headers=connected.auth)
    assert r.status_code == 422


def test_a_merchants_token_sees_only_its_own(
    client: TestClient,
    runtime: Runtime,
    connected: MerchantCtx,
    worker: Worker,
    admin_auth: dict[str, str],
) -> None:
    other = connected_merchant(runtime, "Other shop")
    mine = sf.pi_succeeds(T0)
    theirs = sf.pi_succeeds(T0)
    for evt in mine.events:
        post_ok(client, connected.id, evt)
    for evt in theirs.events:
        post_ok(client, other.id, evt)
    worker.drain()
    my_pi = mine.events[0]["data"]["object"]["id"]
    their_pi = theirs.events[0]["data"]["object"]["id"]
    their_evt = theirs.events[0]["id"]

    assert [p["id"] for p in get(client, connected, "payment-intents")["data"]] == [my_pi]
    for path in (
        "payment-intents",
        f"payment-intents/{their_pi}",
        "events",
        f"events/{their_evt}",
        "account",
        "customers",
        "disputes",
        "payment-methods",
    ):
        r = client.get(api(other, path), headers=connected.auth)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    r = client.post(api(other, f"events/{their_evt}/replay"), headers=connected.auth)
    assert r.status_code == 404
    # Not even by asking for their object under my own merchant.
    r = client.get(api(connected, f"payment-intents/{their_pi}"), headers=connected.auth)
    assert r.status_code == 404
    assert client.get(api(other, "payment-intents")).status_code == 401
    r = client.get(api(other, "payment-intents"), headers=admin_auth)
    assert [p["id"] for p in r.json()["data"]] == [their_pi]


def test_stage_never_shows_live_data(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    live_pi = sf.payment_intent(created=T0)
    live_events = [
        sf.event("payment_intent.succeeded", {**live_pi, "status": "succeeded"}, livemode=True),
        sf.event("account.updated", sf.obj("account"), livemode=True),
        sf.event("customer.updated", sf.obj("customer"), livemode=True),
    ]
    for evt in live_events:
        post_ok(client, connected.id, evt, env="live", secret=LIVE_SIGNING_SECRET)
    stage_pi = sf.payment_intent(created=T0)
    post_ok(client, connected.id, sf.event("payment_intent.created", stage_pi))
    worker.drain()

    assert [p["id"] for p in get(client, connected, "payment-intents")["data"]] == [stage_pi["id"]]
    r = client.get(api(connected, f"payment-intents/{live_pi['id']}"), headers=connected.auth)
    assert r.status_code == 404
    assert client.get(api(connected, "account"), headers=connected.auth).status_code == 404
    assert get(client, connected, "customers")["data"] == []
    assert len(get(client, connected, "events")["data"]) == 1
    r = client.get(api(connected, f"events/{live_events[0]['id']}"), headers=connected.auth)
    assert r.status_code == 404

    live = get(client, connected, "payment-intents", env="live")["data"]
    assert [(p["id"], p["object"]["livemode"]) for p in live] == [(live_pi["id"], True)]
    assert get(client, connected, "account", env="live")["object"]["id"] == "acct_1PgafTB7WZ01zgkW"
    assert len(get(client, connected, "events", env="live")["data"]) == 3


def test_account_is_the_data_sets_account_not_the_last_account_seen(
    client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    """An account.updated about another account (e.g. a Connect account's event without the
    ``account`` field) must not pass for the merchant's own account."""
    own = sf.obj("account", charges_enabled=True)
    # Newer in every way a "latest account" rule could look at.
    other = sf.obj(
        "account", id="acct_1ZOtherAccount", charges_enabled=False, created=own["created"] + 100
    )
    post_ok(client, connected.id, sf.event("account.updated", own, created=T0))
    post_ok(client, connected.id, sf.event("account.updated", other, created=T0 + 10))
    worker.drain()
    shown = get(client, connected, "account")
    assert shown["object"]["id"] == own["id"]
    assert shown["object"]["charges_enabled"] is True
