"""Reconcile against a fake that lists events as Stripe documents it (newest first, paged)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from merchant_backend.asgi import create_app
from merchant_backend.cli import parse_since
from merchant_backend.errors import UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.services import background
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox, reconcile_state
from merchant_backend.store.schema import events
from merchant_backend.stripe import reconcile as rec
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, FakeClock, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import cli_env, run_cli
from tests.stripe_helpers import ACCOUNT, aimed_at, reconcile, wait_for

T0 = 1_790_000_000


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


def history(fake: FakeStripe) -> list[dict[str, Any]]:
    """A day of an account's events: 6 of the handled types, 3 others, in Stripe's shapes."""
    pi = sf.obj("payment_intent", id="pi_Reconcile1", status="requires_payment_method")
    cus = sf.obj("customer", id="cus_Reconcile1")
    made = [
        sf.event("customer.created", cus, created=T0),
        sf.event("payment_intent.created", pi, created=T0 + 10),
        sf.event("charge.succeeded", sf.obj("charge"), created=T0 + 20),
        sf.event("customer.updated", {**cus, "email": "new@example.com"}, created=T0 + 30),
        sf.event("payment_intent.processing", {**pi, "status": "processing"}, created=T0 + 40),
        sf.event("invoice.paid", sf.obj("event")["data"]["object"], created=T0 + 50),
        sf.event(
            "payment_intent.succeeded",
            {**pi, "status": "succeeded", "amount_received": 1099},
            created=T0 + 60,
        ),
        sf.event("account.updated", sf.obj("account", id=ACCOUNT), created=T0 + 70),
        sf.event("charge.dispute.created", sf.obj("dispute", id="dp_Reconcile1"), created=T0 + 80),
    ]
    fake.events.extend(made)
    return made


def stored(runtime: Runtime, merchant_id: str) -> dict[str, tuple[str, str]]:
    with db.read(runtime.engine) as conn:
        rows = conn.execute(
            select(events.c.event_id, events.c.source, events.c.state).where(
                events.c.merchant_id == merchant_id
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def test_a_run_that_inserts_events_wakes_the_worker_of_its_process(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    history(fake)
    runtime.inbox_bell.clear()
    reconcile(runtime, stage.id, "stage", since=T0)
    assert runtime.inbox_bell.wait(0)  # rung after the page's commit (issue 11)
    runtime.inbox_bell.clear()
    reconcile(runtime, stage.id, "stage", since=T0)  # nothing new: no ring
    assert not runtime.inbox_bell.wait(0)


def test_first_run_inserts_the_handled_events_and_the_worker_applies_them(
    fake: FakeStripe,
    runtime: Runtime,
    stage: MerchantCtx,
    client: TestClient,
    worker: Worker,
    clock: FakeClock,
) -> None:
    made = history(fake)
    started = clock.freeze()
    summary = reconcile(runtime, stage.id, "stage", since=T0)
    handled = [
        e["id"]
        for e in made
        if e["type"] not in ("customer.created", "charge.succeeded", "invoice.paid")
    ]
    assert summary["fetched"] == 9
    assert summary["new"] == 6
    assert summary["already_known"] == 0
    assert summary["skipped_types"] == 3
    assert stored(runtime, stage.id) == {i: ("reconcile", "pending") for i in handled}
    [listing] = fake.requests
    assert listing.path == "/v1/events"
    assert listing.one("created[gte]") == str(T0)
    assert int(listing.one("created[lte]") or 0) == started
    assert listing.one("limit") == "100"
    assert "types[0]" not in listing.query
    assert worker.drain() == 6
    r = client.get(
        f"/api/v1/merchants/{stage.id}/stage/payment-intents/pi_Reconcile1", headers=stage.auth
    )
    assert r.json()["object"]["status"] == "succeeded"
    r = client.get(f"/api/v1/merchants/{stage.id}/stage/events/{handled[0]}", headers=stage.auth)
    assert r.json()["source"] == "reconcile"
    assert r.json()["state"] == "applied"


def test_no_duplicates_and_webhook_deliveries_count_as_known(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    made = history(fake)
    delivered = made[3]  # customer.updated arrived by webhook
    raw, header = sf.signed(delivered, SIGNING_SECRET)
    r = client.post(
        f"/webhooks/stripe/{stage.id}/stage", content=raw, headers={"Stripe-Signature": header}
    )
    assert r.status_code == 200
    first = reconcile(runtime, stage.id, "stage", since=T0)
    assert (first["new"], first["already_known"]) == (5, 1)
    second = reconcile(runtime, stage.id, "stage", since=T0)
    assert (second["fetched"], second["new"], second["already_known"]) == (9, 0, 6)
    with db.read(runtime.engine) as conn:
        count = conn.execute(select(func.count()).select_from(events)).scalar_one()
    assert count == 6
    assert stored(runtime, stage.id)[delivered["id"]][0] == "webhook"


def test_an_interrupted_run_resumes_after_its_last_page(
    fake: FakeStripe,
    runtime: Runtime,
    stage: MerchantCtx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rec, "PAGE_SIZE", 2)
    made = history(fake)
    newest_first = sorted(made, key=lambda e: e["created"], reverse=True)
    # Stripe fails on the third page (after the SDK's retries): the run stops there.
    original = fake.handle
    calls = {"n": 0}

    def third_page_fails(q: Any) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 3:
            return 500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        return original(q)

    monkeypatch.setattr(fake, "handle", third_page_fails)
    with pytest.raises(UpstreamFailure):
        reconcile(runtime, stage.id, "stage", since=T0)
    with db.read(runtime.engine) as conn:
        state = reconcile_state.load_state(conn, stage.id, "stage")
    assert state.run is not None
    assert state.run.pages == 2
    assert state.run.cursor == newest_first[3]["id"]
    partial = stored(runtime, stage.id)
    assert len(partial) == 3  # four events seen, one of them charge.succeeded
    monkeypatch.setattr(fake, "handle", original)
    fake.requests.clear()
    summary = reconcile(runtime, stage.id, "stage")
    assert summary["resumed"] is True
    assert fake.requests[0].one("starting_after") == newest_first[3]["id"]
    assert fake.requests[0].one("created[gte]") == str(T0)
    assert summary["fetched"] == 9
    assert summary["new"] == 6
    assert summary["pages"] == 5
    assert len(stored(runtime, stage.id)) == 6
    with db.read(runtime.engine) as conn:
        state = reconcile_state.load_state(conn, stage.id, "stage")
    assert state.run is None
    assert state.synced_until == summary["until"]


def test_next_run_starts_where_the_last_ended_minus_the_overlap(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    first = reconcile(runtime, stage.id, "stage")
    assert int(fake.requests[0].one("created[gte]") or 0) == first["until"] - rec.RETENTION_SECONDS
    reconcile(runtime, stage.id, "stage")
    assert int(fake.requests[1].one("created[gte]") or 0) == first["until"] - rec.OVERLAP_SECONDS


def test_events_of_the_other_mode_are_not_taken(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    pi = sf.obj("payment_intent", id="pi_Live")
    fake.events.append(sf.event("payment_intent.created", pi, created=T0, livemode=True))
    fake.events.append(
        sf.event("payment_intent.created", pi, created=T0 + 1, account="acct_1Stranger")
    )
    summary = reconcile(runtime, stage.id, "stage", since=T0)
    assert summary["rejected"] == 2
    assert summary["new"] == 0
    assert stored(runtime, stage.id) == {}


def test_cli_reconcile_prints_the_summary(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, settings: Settings
) -> None:
    history(fake)
    env = cli_env(settings, MERCHANT_BACKEND_STRIPE_API_BASE=fake.url)
    base = ["reconcile", "--merchant", stage.id, "--env", "stage"]
    result = run_cli([*base, "--since", "2026-09-21T14:13:20Z"], env)
    assert result.exit_code == 0, result.output
    assert '"new": 6' in result.stdout
    assert '"already_known": 0' in result.stdout
    assert '"skipped_types": 3' in result.stdout
    bad = run_cli([*base, "--since", "last tuesday"], env)
    assert bad.exit_code == 2
    assert "--since must be unix seconds or an ISO date" in bad.stderr


def test_since_accepts_seconds_and_iso_dates() -> None:
    assert parse_since("1790000000") == T0
    assert parse_since("2026-09-21T14:13:20Z") == T0
    assert parse_since("2026-09-21T16:13:20+02:00") == T0
    assert parse_since("2026-09-21") == T0 - (14 * 3600 + 13 * 60 + 20)
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_scheduled_reconcile_runs_inside_the_service(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    history(fake)
    for e in fake.events:
        e["created"] = int(time.time()) - 100  # inside the first run's 30-day window
    runtime.settings = runtime.settings.model_copy(update={"reconcile_interval": 3600.0})
    with TestClient(create_app(runtime, run_worker=True)):

        def all_applied() -> bool:
            with db.read(runtime.engine) as conn:
                return inbox.counts_by_state(conn, stage.id, "stage")["applied"] == 6

        wait_for("the scheduled run's events to be applied", all_applied, timeout=10)
    assert [q.path for q in fake.requests] == ["/v1/events"]


def test_scheduler_goes_on_after_a_broken_data_set(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    add_data_set(runtime, stage.id, "live")  # its key is unknown to Stripe: 401
    assert background.Scheduler(runtime, 60).run_once() == 1
    with db.read(runtime.engine) as conn:
        assert reconcile_state.load_state(conn, stage.id, "stage").synced_until is not None
        assert reconcile_state.load_state(conn, stage.id, "live").synced_until is None
