"""End to end against localstripe: a stateful fake Stripe server nobody here wrote.

Our service runs on a real port (uvicorn in a thread, with its worker), localstripe delivers
its own signed webhooks to it, and payments go through our API. No event is made by hand.

localstripe pickles its state to the fixed path /tmp/localstripe.pickle, so two instances must
never run at once: a file lock is held while this module runs (the SQLite and PostgreSQL runs
of the suite may run side by side). Each test gets a fresh instance (``--from-scratch``), so no
webhook still pending from one test can be delivered into the next.

What localstripe gets wrong and these tests do not build on: it accepts any ``sk_`` key (also
``sk_live_`` for test data), shares one store between all keys, always says
``livemode: false``, lists events oldest first and lacks ``types[]``, ``ending_before``,
``/v1/account`` and ``/v1/webhook_endpoints`` (see test_stripe_verify/provision/reconcile for
those, against a fake that follows Stripe's documentation).
"""

from __future__ import annotations

import fcntl
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
import uvicorn

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.sync.worker import Worker
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests.conftest import SECRET_KEY, MerchantCtx, add_data_set, make_merchant
from tests.foundation_helpers import REPO, free_port
from tests.stripe_helpers import aimed_at, reconcile, wait_for

LOCALSTRIPE = REPO / ".venv" / "bin" / "localstripe"
LOCK = Path("/tmp/localstripe.lock")

pytestmark = pytest.mark.skipif(not LOCALSTRIPE.exists(), reason="localstripe not installed")


@pytest.fixture(scope="module")
def localstripe_lock() -> Iterator[None]:
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class LocalStripe:
    url: str
    log: Path

    def deliveries(self, outcome: str) -> int:
        """How many webhook deliveries localstripe logged as ``delivered`` or ``failed``."""
        text = self.log.read_text(errors="replace")
        word = "successfully delivered" if outcome == "delivered" else "failed"
        return sum(1 for line in text.splitlines() if "webhook" in line and word in line)


@pytest.fixture
def localstripe(localstripe_lock: None, tmp_path: Path) -> Iterator[LocalStripe]:
    port = free_port()
    log = tmp_path / "localstripe.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(LOCALSTRIPE), "--port", str(port), "--from-scratch"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                assert proc.poll() is None, log.read_text()
                return False

        wait_for("localstripe to listen", listening)
        yield LocalStripe(f"http://127.0.0.1:{port}", log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


class Service:
    """Our app on a real port, as Stripe (here localstripe) reaches it."""

    def __init__(self, runtime: Runtime) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(runtime, run_worker=True),
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for("our service to start", lambda: self.server.started)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


@pytest.fixture
def settings(settings: Settings, localstripe: LocalStripe) -> Settings:
    return aimed_at(settings, localstripe.url, stripe_timeout=10.0)


@dataclass
class Shop:
    merchant: MerchantCtx
    service: Service
    stripe: stripe.StripeClient  # the merchant's own calls to Stripe (e.g. their checkout)
    runtime: Runtime

    def api(
        self, method: str, tail: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        path = f"/api/v1/merchants/{self.merchant.id}/stage{tail}"
        sent = {**self.merchant.auth, **(headers or {})}
        return self.service.http.request(method, path, headers=sent, **kw)

    def synced(self, collection: str, object_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/{collection}/{object_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def inbox_entry(self, type_: str, object_id: str, state: str = "applied") -> Any:
        """The inbox entry of an event of ``type_`` about ``object_id`` once it has ``state``."""
        with db.read(self.runtime.engine) as conn:
            entries, _ = inbox.list_page(
                conn, self.merchant.id, "stage", limit=100, type_=type_, object_id=object_id
            )
        return next((e for e in entries if e.state == state), None)


@pytest.fixture
def shop(runtime: Runtime, localstripe: LocalStripe) -> Iterator[Shop]:
    merchant = make_merchant(runtime)
    signing_secret = "whsec_" + secrets.token_hex(16)
    add_data_set(runtime, merchant.id, "stage", signing_secret=signing_secret)
    service = Service(runtime)
    shop = None
    try:
        r = httpx.post(
            f"{localstripe.url}/_config/webhooks/merchant-backend",
            json={
                "url": f"http://127.0.0.1:{service.port}/webhooks/stripe/{merchant.id}/stage",
                "secret": signing_secret,
                "events": list(HANDLED_EVENTS),
            },
        )
        assert r.status_code == 200, r.text
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe.url})
        shop = Shop(merchant, service, client, runtime)
        yield shop
    finally:
        # A test may have restarted the service: stop the one running now.
        current = shop.service if shop is not None else service
        if current.thread.is_alive():
            current.stop()


def test_confirmed_card_payment_succeeds_and_localstripes_delivery_is_applied(
    shop: Shop,
) -> None:
    r = shop.api(
        "POST",
        "/payment-intents",
        headers={"Idempotency-Key": "order-1"},
        json={"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
    )
    assert r.status_code == 200, r.text
    pi = r.json()
    assert pi["object"]["status"] == "succeeded"
    assert pi["client_secret"].startswith(pi["id"])
    assert pi["publishable_key"].startswith("pk_test_")
    # Written at once, before any webhook.
    assert shop.synced("payment-intents", pi["id"])["object"]["status"] == "succeeded"
    entry = wait_for(
        "the signed payment_intent.succeeded delivery",
        lambda: shop.inbox_entry("payment_intent.succeeded", pi["id"]),
    )
    assert entry.source == "webhook"
    synced = shop.synced("payment-intents", pi["id"])
    assert synced["object"]["status"] == "succeeded"
    assert [h["event_id"] for h in synced["history"]] == [entry.event_id]


def test_declined_card_is_402_and_the_projection_shows_the_error(shop: Shop) -> None:
    r = shop.api(
        "POST",
        "/payment-intents",
        json={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_chargeCustomerFail",
            "confirm": True,
        },
    )
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "card_declined"
    assert error["message"] == "Your card was declined."
    assert "decline_code" in error  # localstripe sends none; real Stripe names one
    pi_id = error["payment_intent"]
    synced = shop.synced("payment-intents", pi_id)["object"]
    assert synced["status"] == "requires_payment_method"
    assert synced["last_payment_error"]["code"] == "card_declined"
    wait_for(
        "the payment_intent.payment_failed delivery",
        lambda: shop.inbox_entry("payment_intent.payment_failed", pi_id),
    )
    synced = shop.synced("payment-intents", pi_id)["object"]
    assert synced["status"] == "requires_payment_method"
    assert synced["last_payment_error"]["code"] == "card_declined"


def test_manual_capture(shop: Shop) -> None:
    r = shop.api(
        "POST",
        "/payment-intents",
        json={
            "amount": 4200,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
        },
    )
    assert r.status_code == 200, r.text
    pi_id = r.json()["id"]
    assert r.json()["object"]["status"] == "requires_capture"
    assert shop.synced("payment-intents", pi_id)["object"]["status"] == "requires_capture"
    r = shop.api("POST", f"/payment-intents/{pi_id}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["object"]["status"] == "succeeded"
    wait_for(
        "the payment_intent.succeeded delivery after the capture",
        lambda: shop.inbox_entry("payment_intent.succeeded", pi_id),
    )
    assert shop.synced("payment-intents", pi_id)["object"]["status"] == "succeeded"


def test_cancel(shop: Shop) -> None:
    r = shop.api(
        "POST",
        "/payment-intents",
        json={"amount": 800, "currency": "usd", "payment_method": "pm_card_visa"},
    )
    assert r.status_code == 200, r.text
    pi_id = r.json()["id"]
    assert r.json()["object"]["status"] == "requires_confirmation"
    r = shop.api("POST", f"/payment-intents/{pi_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["object"]["status"] == "canceled"
    assert shop.synced("payment-intents", pi_id)["object"]["status"] == "canceled"
    # Cancelling again is refused by Stripe and said so, not a 500.
    r = shop.api("POST", f"/payment-intents/{pi_id}/cancel")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "stripe_invalid_request"


def test_customer_update_reaches_the_projection(shop: Shop) -> None:
    customer = shop.stripe.v1.customers.create(params={"email": "old@example.com"})
    shop.stripe.v1.customers.update(customer.id, params={"email": "new@example.com"})

    def synced_email() -> str | None:
        r = shop.api("GET", f"/customers/{customer.id}")
        email = r.json()["object"]["email"] if r.status_code == 200 else None
        return email if email == "new@example.com" else None

    wait_for("the customer.updated delivery", synced_email)
    assert shop.inbox_entry("customer.updated", customer.id).source == "webhook"


def test_reconcile_recovers_events_whose_delivery_failed(
    shop: Shop, localstripe: LocalStripe
) -> None:
    start = int(time.time())
    customer = shop.stripe.v1.customers.create(params={"email": "a@example.com"})
    shop.stripe.v1.customers.update(customer.id, params={"email": "b@example.com"})
    wait_for("the first delivery", lambda: shop.inbox_entry("customer.updated", customer.id))
    shop.service.stop()  # the receiver is down
    shop.stripe.v1.customers.update(customer.id, params={"email": "c@example.com"})
    pi = shop.stripe.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    wait_for("both deliveries to fail", lambda: localstripe.deliveries("failed") >= 2)
    with db.read(shop.runtime.engine) as conn:
        assert sum(inbox.counts_by_state(conn, shop.merchant.id, "stage").values()) == 1

    summary = reconcile(shop.runtime, shop.merchant.id, "stage", since=start)
    assert summary["new"] == 2
    assert summary["already_known"] == 1
    assert summary["skipped_types"] == summary["fetched"] - 3  # customer.created and the like
    Worker(shop.runtime.engine, shop.runtime.settings).drain()
    with db.read(shop.runtime.engine) as conn:
        got_pi = inbox.list_page(conn, shop.merchant.id, "stage", limit=10, object_id=pi.id)[0]
        got_customer = inbox.list_page(
            conn, shop.merchant.id, "stage", limit=10, object_id=customer.id
        )[0]
    assert [(e.type, e.source, e.state) for e in got_pi] == [
        ("payment_intent.succeeded", "reconcile", "applied")
    ]
    assert sorted((e.source, e.state) for e in got_customer) == [
        ("reconcile", "applied"),
        ("webhook", "applied"),
    ]
    again = reconcile(shop.runtime, shop.merchant.id, "stage", since=start)
    assert (again["new"], again["already_known"]) == (0, 3)

    # The projections, read through the API once the service is back.
    shop.service = Service(shop.runtime)
    assert shop.synced("customers", customer.id)["object"]["email"] == "c@example.com"
    assert shop.synced("payment-intents", pi.id)["object"]["status"] == "succeeded"
