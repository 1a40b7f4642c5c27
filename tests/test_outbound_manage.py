"""Managing destinations (the use cases under the API, CLI and web page) and the change feed.
On SQLite and PostgreSQL (``--db``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from merchant_backend.outbound import ssrf
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.services import notifications as manage
from merchant_backend.store import db, objects
from merchant_backend.store.schema import outbound_destinations
from merchant_backend.sync.handlers import snapshot_of
from tests import stripe_factory as sf
from tests.outbound_support import Receiver, allowing_local
from tests.webhook_support import connected_merchant


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return allowing_local(runtime)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """hooks.example resolves to a public address (the sandbox has no DNS)."""
    monkeypatch.setattr(ssrf, "resolve_host", lambda host, port: ["93.184.216.34"])


@pytest.fixture
def rcv() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def customers(
    rt: Runtime, merchant_id: str, count: int, *, start: int = 0, notify: bool = True
) -> None:
    """``count`` new customers in one transaction: ``count`` changes."""
    snaps = [
        snapshot_of(
            "customer",
            sf.obj("customer", id=f"cus_{start + n:06d}"),
            event_id=f"evt_{start + n}",
            event_type="customer.updated",
            event_created=1_760_000_000,
        )
        for n in range(count)
    ]
    if notify:
        with db.write(rt.engine) as conn:
            objects.apply_snapshots(conn, merchant_id, "stage", snaps)
    else:  # as another process would: committed, but nobody in this process is told
        with rt.engine.begin() as conn:
            objects.apply_snapshots(conn, merchant_id, "stage", snaps)
            conn.info.pop(db.AFTER_COMMIT, None)


def test_create_shows_the_secret_once_and_stores_it_encrypted(
    rt: Runtime, public_dns: None
) -> None:
    m = connected_merchant(rt)
    made = manage.create_destination(
        rt,
        m.id,
        "live",
        manage.DestinationInput(url="https://hooks.example/in", description="shop"),
    )
    body = made.as_json()
    assert body["secret"].startswith("whsec_")
    assert body["object_types"] == [
        "payment_intent",
        "customer",
        "payment_method",
        "dispute",
        "account",
    ]
    assert body["enabled"] is True and body["deliveries"]["delivered"] == 0
    shown = manage.get_destination(rt, m.id, "live", body["id"]).as_json()
    assert "secret" not in shown and shown["secret_hint"].startswith("whsec_…")
    with rt.engine.connect() as conn:
        stored = conn.execute(select(outbound_destinations.c.secret_enc)).scalar_one()
    assert stored.startswith("mb1:") and body["secret"][6:] not in stored
    # Another merchant, another environment, the operator: none of them see it.
    other = connected_merchant(rt, "Other")
    for owner, env in ((other.id, "live"), (m.id, "stage"), (None, "live")):
        with pytest.raises(manage.DestinationNotFound):
            manage.get_destination(rt, owner, env, body["id"])
    assert [v.destination.id for v in manage.list_destinations(rt, m.id, "live")] == [body["id"]]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (manage.DestinationInput(url="http://hooks.example/in"), "url"),  # http in live
        (manage.DestinationInput(url="https://127.0.0.1/in"), "url"),
        (manage.DestinationInput(url=None), "url"),
        (
            manage.DestinationInput(url="https://hooks.example/in", object_types=["charge"]),
            "object_types",
        ),
        (manage.DestinationInput(url="https://hooks.example/in", object_types=[]), "object_types"),
        (
            manage.DestinationInput(url="https://hooks.example/in", description="x" * 501),
            "description",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    runtime: Runtime, public_dns: None, data: manage.DestinationInput, field: str
) -> None:
    m = connected_merchant(runtime)
    with pytest.raises(manage.InvalidDestinationInput) as info:
        manage.create_destination(runtime, m.id, "live", data)
    assert field in info.value.by_field
    assert manage.list_destinations(runtime, m.id, "live") == []


def test_update_disable_enable_rotate_delete(rt: Runtime, rcv: Receiver) -> None:
    m = connected_merchant(rt)
    made = manage.create_destination(rt, m.id, "stage", manage.DestinationInput(url=rcv.url))
    dest_id = made.view.destination.id
    off = manage.update_destination(
        rt, m.id, "stage", dest_id, manage.DestinationInput(enabled=False)
    )
    assert (
        off.destination.enabled is False and off.destination.disabled_reason == "disabled by a user"
    )
    on = manage.update_destination(
        rt, m.id, "stage", dest_id, manage.DestinationInput(enabled=True, object_types=["dispute"])
    )
    assert on.destination.enabled and on.destination.disabled_reason is None
    assert on.destination.object_types == ("dispute",)
    with pytest.raises(manage.InvalidDestinationInput):
        manage.update_destination(
            rt, m.id, "stage", dest_id, manage.DestinationInput(url="ftp://x/")
        )
    # A test message, signed with the secret shown at creation, sent within the call.
    rcv.secret = made.secret
    result = manage.send_test(rt, m.id, "stage", dest_id)
    assert (result.outcome, result.status_code) == ("delivered", 200)
    (got,) = rcv.received
    assert got.message["type"] == "test" and got.message["id"] == result.message_id
    assert got.message["sequence"] == 0
    # After a rotation the old secret no longer verifies: the receiver needs the new one.
    rotated = manage.rotate_secret(rt, m.id, "stage", dest_id)
    assert rotated.secret != made.secret
    refused = manage.send_test(rt, m.id, "stage", dest_id)
    assert (refused.outcome, refused.status_code) == ("retrying", 400)
    rcv.secret = rotated.secret
    assert manage.send_test(rt, m.id, "stage", dest_id).outcome == "delivered"
    log = manage.delivery_log(rt, m.id, "stage", dest_id)
    assert [d.state for d in log.deliveries] == ["delivered", "retrying", "delivered"]
    assert [a.status_code for a in log.attempts] == [200, 400, 200]
    # Replaying the refused one now delivers it, under the same message id.
    assert manage.replay(rt, m.id, "stage", dest_id, message_id=refused.message_id) == 1
    Dispatcher(rt).drain()
    assert [r.webhook_id for r in rcv.received][-1] == refused.message_id
    manage.delete_destination(rt, m.id, "stage", dest_id)
    with pytest.raises(manage.DestinationNotFound):
        manage.get_destination(rt, m.id, "stage", dest_id)


def test_installation_wide_destinations_receive_every_merchants_changes(
    rt: Runtime, rcv: Receiver
) -> None:
    a, b = connected_merchant(rt, "A"), connected_merchant(rt, "B")
    made = manage.create_destination(rt, None, "stage", manage.DestinationInput(url=rcv.url))
    rcv.secret = made.secret
    customers(rt, a.id, 2)
    customers(rt, b.id, 3, start=100)
    Dispatcher(rt).drain()
    merchants = sorted(r.message["merchant_id"] for r in rcv.received)
    assert merchants == sorted([a.id] * 2 + [b.id] * 3)
    assert manage.list_destinations(rt, a.id, "stage") == []  # not the merchant's to see


# --- The feed -------------------------------------------------------------------------------


def test_the_feed_pages_through_thousands_of_changes_in_sequence_order(rt: Runtime) -> None:
    m = connected_merchant(rt)
    customers(rt, m.id, 1500)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = manage.changes(rt, m.id, "stage", after=cursor, limit=400)
        seen.extend(x["sequence"] for x in page.data)
        pages += 1
        if pages == 2:  # changes committed while a reader pages are simply further on
            customers(rt, m.id, 1000, start=5000)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == list(range(1, 2501))
    assert pages == 7
    # At the end, the cursor stays put and the page is empty.
    end = manage.changes(rt, m.id, "stage", after=page.next_cursor, limit=400)
    assert (end.data, end.has_more, end.next_cursor) == ([], False, "2500")
    # Another merchant's feed is its own.
    other = connected_merchant(rt, "Other")
    assert manage.changes(rt, other.id, "stage", after=None, limit=10).data == []
    with pytest.raises(manage.InvalidDestinationInput):
        manage.changes(rt, m.id, "stage", after="abc", limit=10)


def _long_poll(
    rt: Runtime, merchant_id: str, after: str, out: dict[str, Any], ready: threading.Event
) -> None:
    ready.set()
    out["page"] = manage.changes(rt, merchant_id, "stage", after=after, limit=10, wait=20)
    out["returned"] = time.monotonic()


@pytest.mark.parametrize("same_process", [True, False])
def test_a_long_poll_returns_within_a_second_of_a_new_change(
    rt: Runtime, same_process: bool
) -> None:
    m = connected_merchant(rt)
    customers(rt, m.id, 3)
    out: dict[str, Any] = {}
    ready = threading.Event()
    waiter = threading.Thread(target=_long_poll, args=(rt, m.id, "3", out, ready))
    waiter.start()
    assert ready.wait(10)
    committed = time.monotonic()
    customers(rt, m.id, 1, start=10, notify=same_process)
    waiter.join(25)
    assert not waiter.is_alive()
    assert [x["sequence"] for x in out["page"].data] == [4]
    assert out["returned"] - committed < 1.0


def test_wait_zero_answers_at_once(rt: Runtime) -> None:
    m = connected_merchant(rt)
    started = time.monotonic()
    page = manage.changes(rt, m.id, "stage", after="0", limit=10, wait=0)
    assert page.data == [] and page.next_cursor == "0"
    assert time.monotonic() - started < 1.0


def test_pruning_removes_delivered_messages_and_keeps_failed_and_open_ones(
    rt: Runtime, rcv: Receiver
) -> None:
    from merchant_backend.store import retention
    from merchant_backend.store.schema import (
        outbound_attempts,
        outbound_deliveries,
        outbound_messages,
    )

    m = connected_merchant(rt)
    made = manage.create_destination(rt, m.id, "stage", manage.DestinationInput(url=rcv.url))
    rcv.secret = made.secret
    customers(rt, m.id, 3)  # delivered below
    Dispatcher(rt).drain()
    rcv.mode = "fail"
    customers(rt, m.id, 2, start=10)  # retrying
    Dispatcher(rt).drain()
    with db.write(rt.engine) as conn:  # one of them given up: failed, kept
        conn.execute(
            outbound_deliveries.update()
            .where(outbound_deliveries.c.state == "retrying")
            .where(outbound_deliveries.c.sequence == 4)
            .values(state="failed")
        )
    manage.update_destination(
        rt, m.id, "stage", made.view.destination.id, manage.DestinationInput(enabled=False)
    )
    customers(rt, m.id, 1, start=20)  # no destination wants it: nothing to wait for
    future = time.time() + 3600
    assert retention.prune(rt.engine, time.time() - 3600).outbound_messages == 0  # none that old
    assert retention.prune(rt.engine, future, dry_run=True).outbound_messages == 4
    with rt.engine.connect() as conn:
        assert len(conn.execute(select(outbound_messages.c.sequence)).scalars().all()) == 6
    assert retention.prune(rt.engine, future, batch_size=2).outbound_messages == 4
    with rt.engine.connect() as conn:
        kept = sorted(conn.execute(select(outbound_messages.c.sequence)).scalars().all())
        attempts_left = conn.execute(select(outbound_attempts.c.message_id)).scalars().all()
        deliveries_left = conn.execute(select(outbound_deliveries.c.state)).scalars().all()
    assert kept == [4, 5]  # the failed one and the retrying one
    assert sorted(deliveries_left) == ["failed", "retrying"]
    assert len(attempts_left) == 2
