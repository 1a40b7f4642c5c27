"""Wake-ups, not polling (issue 11, item 1): a committed event is applied without waiting for
the poll interval, which every test here sets to an hour. In ``serve`` the inbox writer rings
the worker's doorbell after its commit; a separate ``worker`` process on PostgreSQL is woken
by the NOTIFY the inserting transaction sends. Also: the apply lag metric and the
``received_at`` / ``applied_at`` of an event entry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.store.inbox_signal import Doorbell
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx
from tests.webhook_support import (
    inbox_item,
    inbox_rows,
    metric,
    post_ok,
    process_env,
    start,
    stop,
    wait_for,
)

AN_HOUR = 3600.0


def _state(runtime: Runtime, m: MerchantCtx, event_id: str) -> str | None:
    with db.read(runtime.engine) as conn:
        entry = inbox.get(conn, m.id, "stage", event_id)
    return entry.state if entry else None


def test_a_committed_delivery_wakes_the_worker_of_serve(
    runtime: Runtime, connected: MerchantCtx
) -> None:
    s = runtime.settings.model_copy(update={"worker_poll_interval": AN_HOUR})
    app = create_app(Runtime(s, engine=runtime.engine), run_worker=True)
    with TestClient(app) as client:
        for n in range(3):  # not only the first: the worker goes back to waiting each time
            evt = sf.event("customer.updated", sf.obj("customer", id=f"cus_wake{n}"))
            post_ok(client, connected.id, evt)
            wait_for(
                lambda e=evt: _state(runtime, connected, e["id"]) == "applied",
                what=f"event {n} applied without a poll",
            )
        entry = client.get(
            f"/api/v1/merchants/{connected.id}/stage/events/{evt['id']}", headers=connected.auth
        ).json()
        # Unix seconds with a millisecond fraction; applied after received.
        assert entry["received_at"] == round(entry["received_at"], 3)
        assert entry["applied_at"] == round(entry["applied_at"], 3)
        assert entry["received_at"] <= entry["applied_at"] < entry["received_at"] + 60
        assert (
            metric(client, "merchant_backend_event_apply_lag_seconds_count", source="webhook") >= 3
        )


def test_an_event_not_yet_applied_has_no_applied_at(
    client: TestClient, connected: MerchantCtx
) -> None:
    evt = sf.event("customer.updated", sf.obj("customer"))
    post_ok(client, connected.id, evt)
    entry = client.get(
        f"/api/v1/merchants/{connected.id}/stage/events/{evt['id']}", headers=connected.auth
    ).json()
    assert entry["state"] == "pending"
    assert entry["applied_at"] is None


def test_a_ring_during_a_claim_is_not_lost() -> None:
    """The worker clears the bell before it looks: a ring after that stays set for its wait."""
    bell = Doorbell()
    bell.ring()
    bell.clear()  # the worker starts to look …
    bell.ring()  # … an event commits meanwhile …
    assert bell.wait(0)  # … and the wait after an empty claim returns at once
    bell.clear()
    assert not bell.wait(0)


def test_stop_wakes_a_waiting_worker(runtime: Runtime) -> None:
    from merchant_backend.sync.worker import Worker

    s = runtime.settings.model_copy(update={"worker_poll_interval": AN_HOUR})
    worker = Worker(runtime.engine, s, worker_id="stopping")
    thread = worker.start_thread()
    worker.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def _listening_backends(runtime: Runtime) -> int:
    with db.read(runtime.engine) as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query = 'LISTEN merchant_backend_inbox'"
                )
            ).scalar_one()
        )


@pytest.mark.slow
def test_notify_wakes_a_separate_worker_process(
    db_kind: str,
    database_url: str,
    settings: Settings,
    runtime: Runtime,
    connected: MerchantCtx,
    tmp_path: Path,
) -> None:
    if db_kind != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runs one process (serve)")
    env = process_env(settings, database_url, MERCHANT_BACKEND_WORKER_POLL_INTERVAL=str(AN_HOUR))
    proc = start(["worker"], env, tmp_path / "worker.log")
    try:
        wait_for(lambda: _listening_backends(runtime) == 1, what="the worker's LISTEN")
        # The second event can only be taken after a NOTIFY: whatever ring the listener sent
        # when it connected was spent on the first (or before it).
        for n in range(2):
            evt = sf.event("customer.updated", sf.obj("customer", id=f"cus_notify{n}"))
            with db.write(runtime.engine) as conn:
                inbox.insert_new(conn, [inbox_item(connected, evt, "customer")], time.time())
            wait_for(
                lambda e=evt: _state(runtime, connected, e["id"]) == "applied",
                what=f"event {n} applied by the notified worker",
            )
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        stop(proc)
    assert {r.state for r in inbox_rows(runtime.engine, connected.id)} == {"applied"}


def test_the_listener_rings_on_notify_and_after_reconnecting(
    db_kind: str, runtime: Runtime, connected: MerchantCtx
) -> None:
    if db_kind != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from merchant_backend.store.inbox_signal import Listener

    bell = Doorbell()
    listener = Listener(runtime.engine, bell, check_every=0.05)
    listener.start()
    try:
        assert listener.listening.wait(30)
        assert bell.wait(30)  # the ring after LISTEN: events may predate it
        bell.clear()
        evt = sf.event("customer.updated", sf.obj("customer"))
        with db.write(runtime.engine) as conn:
            inbox.insert_new(conn, [inbox_item(connected, evt, "customer")], time.time())
        assert bell.wait(30)
        bell.clear()
        # The server drops the listener's connection: it connects again and rings.
        listener.listening.clear()
        with db.write(runtime.engine) as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query = 'LISTEN merchant_backend_inbox'"
                )
            )
        assert listener.listening.wait(30)
        assert bell.wait(30)
    finally:
        listener.stop()
