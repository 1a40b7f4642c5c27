"""Crash test (issue 10, "How it is shown"): ``kill -9`` of ``serve`` between the commit of a
change and its delivery. The change and its message were committed together; after the
restart the message arrives, with the same webhook-id as the attempt that was cut off."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from tests import stripe_factory as sf
from tests.foundation_helpers import free_port
from tests.outbound_support import Receiver, add_destination, delivery_states, messages
from tests.webhook_support import connected_merchant, inbox_item, process_env, start, stop

pytestmark = pytest.mark.slow


def test_a_change_committed_before_a_crash_is_delivered_after_the_restart(
    database_url: str, settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    m = connected_merchant(runtime)
    receiver = Receiver(mode="hang")
    dest, receiver.secret = add_destination(runtime, m.id, receiver.url)
    env = process_env(
        settings,
        database_url,
        MERCHANT_BACKEND_OUTBOUND_ALLOW_PRIVATE="true",
        MERCHANT_BACKEND_OUTBOUND_TIMEOUT="1",
        MERCHANT_BACKEND_OUTBOUND_LEASE_SECONDS="2",
        MERCHANT_BACKEND_OUTBOUND_POLL_INTERVAL="0.05",
        MERCHANT_BACKEND_WORKER_POLL_INTERVAL="0.05",
    )
    events = sf.lifecycle("customer_updates").events[:1]
    with db.write(runtime.engine) as conn:
        inbox.insert_new(
            conn, [inbox_item(m, e, object_type="customer") for e in events], time.time()
        )
    port = str(free_port())
    proc = start(["serve", "--port", port], env, tmp_path / "serve-1.log")
    try:
        # The worker applied the event (projection and message committed together) and the
        # dispatcher is mid-delivery: the receiver holds the request.
        assert receiver.got_request.wait(30), (tmp_path / "serve-1.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        (msg,) = messages(runtime.engine, m.id)
        assert receiver.seen_ids == [msg["id"]]
        assert delivery_states(runtime.engine, dest.id) == {"delivering": 1}
        receiver.mode = "ok"
        receiver.release.set()  # the cut-off request is answered into the void
        proc = start(["serve", "--port", port], env, tmp_path / "serve-2.log")
        assert receiver.wait_for(1, timeout=30), (tmp_path / "serve-2.log").read_text()
        (got,) = receiver.received
        assert got.webhook_id == msg["id"] and got.message == msg
    finally:
        stop(proc)
        receiver.close()
