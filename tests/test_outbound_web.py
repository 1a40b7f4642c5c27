"""The Notifications page: list and add destinations (secret once), switch off and on, rotate,
test, the delivery log, replay; CSRF and other merchants refused."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.asgi import create_app
from merchant_backend.outbound import failures
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, objects
from merchant_backend.store import destinations as destination_store
from merchant_backend.sync.handlers import snapshot_of
from tests import stripe_factory as sf
from tests.outbound_support import Receiver, add_destination, allowing_local
from tests.web_support import csrf_of, form_fields, hidden, sign_in
from tests.webhook_support import connected_merchant


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return allowing_local(runtime)


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, run_worker=False), base_url="https://testserver") as c:
        yield c


@pytest.fixture
def rcv() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def customer_changed(rt: Runtime, merchant_id: str, customer_id: str) -> None:
    """A customer's change applied as the worker would: one outbound message to send."""
    snap = snapshot_of(
        "customer",
        sf.obj("customer", id=customer_id),
        event_id=f"evt_{customer_id}",
        event_type="customer.updated",
        event_created=1_760_000_000,
    )
    with db.write(rt.engine) as conn:
        objects.apply_snapshots(conn, merchant_id, "stage", [snap])


def test_the_notifications_page(web: TestClient, rt: Runtime, rcv: Receiver) -> None:
    m = connected_merchant(rt)
    sign_in(web, m.token)
    base = f"/m/{m.id}/stage/notifications"
    page = web.get(base)
    assert page.status_code == 200 and "No destination for this environment yet" in page.text
    assert f'href="/m/{m.id}/stage/notifications"' in page.text  # in the navigation
    csrf = csrf_of(web, base)
    nonce = hidden(page.text, "form_nonce")

    bad = web.post(
        base,
        data={
            "csrf_token": csrf,
            "form_nonce": nonce,
            "url": "ftp://x",
            "object_types": ["customer"],
        },
    )
    assert bad.status_code == 422 and "Nothing was added" in bad.text

    added = web.post(
        base,
        data={
            "csrf_token": csrf,
            "form_nonce": nonce,
            "url": rcv.url,
            "description": "Shop",
            "object_types": ["customer"],
        },
    )
    assert added.status_code == 200 and [h.status_code for h in added.history] == [303]
    secret = re.search(
        r'id="signing-secret" type="text" readonly value="(whsec_[^"]+)"', added.text
    )
    assert secret is not None and "not shown again" in added.text
    assert added.headers["cache-control"] == "no-store"
    rcv.secret = secret.group(1)
    dest_id = re.search(r"/notifications/(dst_[0-9a-f]+)/test", added.text).group(1)  # type: ignore[union-attr]
    one = f"{base}/{dest_id}"
    # Not shown again.
    assert secret.group(1) not in web.get(one).text and secret.group(1) not in web.get(base).text

    tested = web.post(f"{one}/test", data={"csrf_token": csrf})
    assert tested.status_code == 200 and "delivered, HTTP 200" in tested.text

    rcv.mode = "fail"
    customer_changed(rt, m.id, "cus_web1")
    Dispatcher(rt).drain()
    log = web.get(one)
    assert "customer.changed" in log.text and "HTTP 500" in log.text and "retrying" in log.text
    msg_id = re.search(r'name="message_id" value="(msg_[0-9a-f]+)"', log.text).group(1)  # type: ignore[union-attr]

    rcv.mode = "ok"
    replayed = web.post(
        f"{one}/replay", data={"csrf_token": csrf, "message_id": msg_id}, follow_redirects=False
    )
    assert replayed.status_code == 303
    Dispatcher(rt).drain()
    assert msg_id in {r.webhook_id for r in rcv.received}
    bad_date = web.post(f"{one}/replay", data={"csrf_token": csrf, "failed_since": "yesterday"})
    assert bad_date.status_code == 422 and "YYYY-MM-DD" in bad_date.text
    assert (
        web.post(
            f"{one}/replay",
            data={"csrf_token": csrf, "failed_since": "2026-01-01"},
            follow_redirects=False,
        ).status_code
        == 303
    )

    off = web.post(f"{one}/disable", data={"csrf_token": csrf})
    assert off.status_code == 200 and "switched off" in off.text and "Switch on" in off.text
    rotated = web.post(f"{one}/rotate", data=form_fields(off.text, f"{one}/rotate"))
    assert rotated.status_code == 200 and "not shown again" in rotated.text
    assert secret.group(1) not in rotated.text

    # No CSRF token: refused, nothing changed. Another merchant: not found.
    assert web.post(f"{one}/enable", data={}).status_code in (400, 403)
    other = connected_merchant(rt, "Other")
    assert web.get(f"/m/{other.id}/stage/notifications").status_code == 404
    gone = web.post(f"{one}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 200 and "The destination is removed" in gone.text
    assert web.get(one).status_code == 404


def closed_port() -> int:
    """A local port nothing listens on (bound for a moment by us, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_delivery_log_says_in_german_why_a_delivery_failed(
    web: TestClient, rt: Runtime
) -> None:
    """A German reader sees the states and the reason in German, the operating system's own
    words kept beside it (in English, marked so); the API keeps the English text."""
    m = connected_merchant(rt)
    dest, _secret = add_destination(rt, m.id, f"http://127.0.0.1:{closed_port()}/hook")
    customer_changed(rt, m.id, "cus_de1")
    Dispatcher(rt).drain()
    sign_in(web, m.token)
    web.cookies.set("mb_lang", "de")
    page = web.get(f"/m/{m.id}/stage/notifications/{dest.id}")
    assert page.status_code == 200
    text = page.text
    assert "Verbindung abgelehnt: Unter dieser Adresse und diesem Port nimmt niemand an" in text
    assert '<span class="small muted" lang="en">ConnectionRefusedError:' in text
    assert ">wird wiederholt</span>" in text  # the delivery's state badge
    assert ">zugestellt</a>" in text and ">wird wiederholt</a>" in text  # the filter links
    assert "retrying" not in re.sub(r'(class|href)="[^"]*"', "", text)
    api = web.get(
        f"/api/v1/merchants/{m.id}/stage/destinations/{dest.id}/deliveries", headers=m.auth
    )
    assert api.status_code == 200, api.text
    assert api.json()["data"][0]["last_error"].startswith("ConnectionRefusedError: ")


def test_a_destination_switched_off_after_days_of_failures_says_why_in_german(
    web: TestClient, rt: Runtime
) -> None:
    m = connected_merchant(rt)
    dest, _secret = add_destination(rt, m.id, "https://hooks.example.com/x")
    reason = failures.auto_disabled(3, failures.no_answer(10))
    with db.write(rt.engine) as conn:
        assert destination_store.record_failure(conn, dest.id, 1.0, disable_after=0, reason=reason)
    sign_in(web, m.token)
    web.cookies.set("mb_lang", "de")
    for page in (f"/m/{m.id}/stage/notifications", f"/m/{m.id}/stage/notifications/{dest.id}"):
        shown = web.get(page)
        assert shown.status_code == 200
        assert (
            "jede Zustellung schlug 3 Tage lang fehl; zuletzt: keine Antwort innerhalb von 10 s"
            in shown.text
        ), page


def test_an_operator_manages_the_installations_destinations_on_a_page_merchants_cannot_see(
    web: TestClient, rt: Runtime, rcv: Receiver
) -> None:
    from tests.conftest import ADMIN_TOKEN

    m = connected_merchant(rt)
    sign_in(web, ADMIN_TOKEN)
    assert 'href="/operator/stage/notifications"' in web.get("/merchants").text
    base = "/operator/stage/notifications"
    page = web.get(base)
    assert page.status_code == 200 and "Notifications for all merchants" in page.text
    assert "No destination for this environment yet" in page.text
    added = web.post(
        base,
        data={
            "csrf_token": csrf_of(web, base),
            "form_nonce": hidden(page.text, "form_nonce"),
            "url": rcv.url,
            "object_types": ["customer"],
        },
    )
    assert added.status_code == 200 and "not shown again" in added.text  # the secret, once
    secret = re.search(r'readonly value="(whsec_[^"]+)"', added.text)
    assert secret is not None
    rcv.secret = secret.group(1)
    dest_id = re.search(r"/operator/stage/notifications/(dst_[0-9a-f]+)/test", added.text)
    assert dest_id is not None
    one = f"{base}/{dest_id.group(1)}"
    # Installation-wide: no merchant owns it, and a merchant's change reaches it.
    (dest,) = destination_store_views(rt, None)
    assert dest.destination.id == dest_id.group(1) and dest.destination.merchant_id is None
    assert destination_store_views(rt, m.id) == []
    customer_changed(rt, m.id, "cus_op1")
    Dispatcher(rt).drain()
    assert [r.message["merchant_id"] for r in rcv.received] == [m.id]
    log = web.get(one).text
    assert "customer.changed" in log and 'href="/operator/stage/notifications"' in log
    assert f'<a href="/m/{m.id}/stage"><code>{m.id}</code></a>' in log  # whose change it was
    off = web.post(f"{one}/disable", data={"csrf_token": csrf_of(web, one)})
    assert off.status_code == 200 and "Switch on" in off.text

    # A merchant sees neither the page nor the destination through its own pages.
    web.cookies.clear()
    sign_in(web, m.token)
    assert web.get(base).status_code == 404
    assert web.get(f"/m/{m.id}/stage/notifications/{dest_id.group(1)}").status_code == 404
    assert rcv.url not in web.get(f"/m/{m.id}/stage/notifications").text
    mine = f"/m/{m.id}/stage/notifications"
    r = web.post(f"{one}/delete", data={"csrf_token": csrf_of(web, mine)})
    assert r.status_code == 404
    assert len(destination_store_views(rt, None)) == 1


def destination_store_views(rt: Runtime, owner: str | None) -> list[Any]:
    from merchant_backend.services import notifications

    return notifications.list_destinations(rt, owner, "stage")
