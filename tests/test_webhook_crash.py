"""Crash test (issue 3, "How it is shown"): a burst of signed events against a real
``merchant-backend serve``, ``kill -9`` in the middle, restart.

Every event that got a 2xx is in the inbox and gets applied; the others are absent or applied;
nothing is half-applied: each object's projection and history match exactly the events that
the inbox marks applied. Then Stripe's retries of the unanswered events complete the picture.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store.schema import events as events_table
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx, add_data_set, make_merchant
from tests.foundation_helpers import free_port
from tests.webhook_support import (
    expected_history,
    expected_projection,
    history,
    process_env,
    projection,
    start,
    stop,
    visible,
    wait_for,
)

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: Any = None

    def start(self) -> None:
        self.proc = start(["serve", "--port", str(self.port)], self.env, self.log)

        def ready() -> bool:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, interval=0.05)


def states(engine: Engine, merchant_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.event_id, events_table.c.state).where(
                events_table.c.merchant_id == merchant_id
            )
        )
        return {r.event_id: r.state for r in rows}


def check_consistent(engine: Engine, merchant_id: str, in_order: list[dict[str, Any]]) -> None:
    """Projections and histories are exactly those of the applied events: none half-applied."""
    applied = {eid for eid, state in states(engine, merchant_id).items() if state == "applied"}
    done = [e for e in in_order if e["id"] in applied]
    assert visible(projection(engine, merchant_id)) == expected_projection(done)
    assert history(engine, merchant_id) == expected_history(done)


def test_kill_9_during_a_burst_loses_no_acknowledged_event(
    settings: Settings, server_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = server_db
    rt = Runtime(settings.model_copy(update={"database_url": url}), engine=engine)
    merchant: MerchantCtx = make_merchant(rt, "Crash shop")
    add_data_set(rt, merchant.id, "stage")

    lifecycles = [
        sf.LIFECYCLES[name](1_760_000_000 + 1000 * i)
        for i in range(12)
        for name in ("pi_succeeds", "pi_fails_then_succeeds", "dispute_won", "customer_updates")
    ]
    in_order = [e for lc in lifecycles for e in lc.events]
    burst = in_order[:]
    random.Random(11).shuffle(burst)

    env = process_env(
        settings,
        url,
        MERCHANT_BACKEND_WORKER_LEASE_SECONDS="1",
        MERCHANT_BACKEND_WORKER_POLL_INTERVAL="0.05",
        MERCHANT_BACKEND_WORKER_BATCH_SIZE="20",
    )
    server = Server(env, tmp_path / "serve.log")
    server.start()
    acked: set[str] = set()
    lock = threading.Lock()
    http = httpx.Client(timeout=10)  # one client: building one costs more than a request

    def deliver(evt: dict[str, Any]) -> None:
        raw, header = sf.signed(evt, SIGNING_SECRET)
        try:
            r = http.post(
                f"{server.base}/webhooks/stripe/{merchant.id}/stage",
                content=raw,
                headers={"Stripe-Signature": header},
            )
        except httpx.HTTPError:
            return  # no answer: Stripe will retry it
        if 200 <= r.status_code < 300:
            with lock:
                acked.add(evt["id"])

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(deliver, evt) for evt in burst]
            wait_for(lambda: len(acked) >= len(burst) // 3, timeout=60, interval=0.001)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
            for f in futures:
                f.result()
    finally:
        stop(server.proc)
    assert 0 < len(acked) < len(burst), "the kill must land in the middle of the burst"

    # Right after the crash: every acknowledged event is in the inbox.
    stored = states(engine, merchant.id)
    assert acked <= set(stored)
    check_consistent(engine, merchant.id, in_order)

    # Restarted, the worker finishes what was stored (leases of the dead process run out).
    server.start()
    try:
        wait_for(lambda: set(states(engine, merchant.id).values()) == {"applied"}, timeout=60)
        final = states(engine, merchant.id)
        assert acked <= set(final)
        check_consistent(engine, merchant.id, in_order)

        # Stripe retries what got no 2xx; then the state is that of every event, in order.
        for evt in burst:
            if evt["id"] not in acked:
                deliver(evt)
        assert acked == {e["id"] for e in burst}
        wait_for(
            lambda: (
                len(states(engine, merchant.id)) == len(burst)
                and set(states(engine, merchant.id).values()) == {"applied"}
            ),
            timeout=60,
        )
        check_consistent(engine, merchant.id, in_order)
        assert visible(projection(engine, merchant.id)) == expected_projection(in_order)
    finally:
        stop(server.proc)
        http.close()
