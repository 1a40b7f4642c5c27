"""``serve --processes N`` (issue 11, item 4): N HTTP processes share the port on PostgreSQL,
each with its own group-commit writer and worker; SQLite refuses N > 1 and says why.

Crash test: a burst of signed events against two processes, ``kill -9`` of one of them in the
middle. Every event that got a 2xx is stored and applied; after Stripe's retries of the rest,
every event is applied exactly once in effect (the in-order projection, one history row each).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store.schema import events, object_events
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx
from tests.foundation_helpers import free_port
from tests.webhook_support import (
    CLI,
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


def test_sqlite_refuses_more_than_one_process_and_says_what_to_do(
    settings: Settings, tmp_path: Path
) -> None:
    env = process_env(settings, f"sqlite:///{tmp_path / 'one.db'}")
    out = subprocess.run(
        [str(CLI), "serve", "--processes", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "--processes" in out.stderr
    assert "SQLite" in out.stderr and "PostgreSQL" in out.stderr
    assert not (tmp_path / "one.db").exists() or out.stdout == ""


def test_processes_must_be_at_least_one(settings: Settings, tmp_path: Path) -> None:
    env = process_env(settings, f"sqlite:///{tmp_path / 'zero.db'}")
    out = subprocess.run(
        [str(CLI), "serve", "--processes", "0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "--processes" in out.stderr


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.mark.slow
def test_two_processes_share_the_inbox_and_survive_kill_9_of_one(
    db_kind: str,
    database_url: str,
    settings: Settings,
    runtime: Runtime,
    connected: MerchantCtx,
    tmp_path: Path,
) -> None:
    if db_kind != "postgresql":
        pytest.skip("several serve processes need PostgreSQL")
    lifecycles = [
        sf.LIFECYCLES[name](1_760_000_000 + 1000 * i)
        for i in range(12)
        for name in ("pi_succeeds", "pi_fails_then_succeeds", "dispute_won", "customer_updates")
    ]
    in_order = [e for lc in lifecycles for e in lc.events]
    burst = in_order[:]
    random.Random(17).shuffle(burst)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        settings,
        database_url,
        MERCHANT_BACKEND_WORKER_LEASE_SECONDS="1",
        MERCHANT_BACKEND_WORKER_BATCH_SIZE="20",
    )
    log = tmp_path / "serve.log"
    proc = start(["serve", "--processes", "2", "--port", str(port)], env, log)
    acked: set[str] = set()
    lock = threading.Lock()
    http = httpx.Client(timeout=10)

    def deliver(evt: dict[str, Any]) -> None:
        raw, header = sf.signed(evt, SIGNING_SECRET)
        try:
            r = http.post(
                f"{base}/webhooks/stripe/{connected.id}/stage",
                content=raw,
                headers={"Stripe-Signature": header},
            )
        except httpx.HTTPError:
            return  # no answer: Stripe will retry it
        if 200 <= r.status_code < 300:
            with lock:
                acked.add(evt["id"])

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=90, interval=0.05)
        wait_for(lambda: len(_children(proc.pid)) >= 2, timeout=60, what="two server processes")
        # The failed-sign-in counts are per process with the default storage: serve says so.
        assert "counted per process" in log.read_text()
        victim = _children(proc.pid)[0]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(deliver, evt) for evt in burst]
            wait_for(lambda: len(acked) >= len(burst) // 3, timeout=60, interval=0.001)
            os.kill(victim, signal.SIGKILL)
            for f in futures:
                f.result()
        assert proc.poll() is None, log.read_text()[-3000:]  # the other one kept serving

        # Every acknowledged event is stored; Stripe's retries bring the rest.
        with runtime.engine.connect() as conn:
            stored = {r[0] for r in conn.execute(select(events.c.event_id))}
        assert acked <= stored
        for _ in range(5):
            for evt in burst:
                if evt["id"] not in acked:
                    deliver(evt)
        assert acked == {e["id"] for e in burst}

        def all_applied() -> bool:
            with runtime.engine.connect() as conn:
                rows = conn.execute(select(events.c.state)).all()
            return len(rows) == len(burst) and {r[0] for r in rows} == {"applied"}

        wait_for(all_applied, timeout=90)
    finally:
        stop(proc)
        http.close()

    # Exactly once in effect: the in-order state, one history row per event.
    with runtime.engine.connect() as conn:
        history_rows = conn.execute(select(func.count()).select_from(object_events)).scalar_one()
    assert history_rows == len(in_order)
    assert visible(projection(runtime.engine, connected.id)) == expected_projection(in_order)
    assert history(runtime.engine, connected.id) == expected_history(in_order)
