"""Crash test (issue 3, "How it is shown"): two ``merchant-backend worker`` processes on one
PostgreSQL inbox, one killed with SIGKILL while it holds leased events. The other takes them
over when the lease runs out; every event ends applied exactly once in effect."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.store.schema import events, object_events
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx
from tests.webhook_support import (
    expected_history,
    expected_projection,
    history,
    inbox_item,
    process_env,
    projection,
    start,
    stop,
    visible,
    wait_for,
)

pytestmark = pytest.mark.slow


def leased_by(runtime: Runtime, pid: int) -> list[str]:
    """Event ids a worker process holds leases on (worker ids carry the pid)."""
    with db.read(runtime.engine) as conn:
        rows = conn.execute(
            select(events.c.event_id).where(
                events.c.state == "processing", events.c.locked_by.like(f"%:{pid}:%")
            )
        )
        return [r[0] for r in rows]


def test_worker_killed_mid_batch_leaves_nothing_lost_or_doubled(
    db_kind: str,
    database_url: str,
    settings: Settings,
    runtime: Runtime,
    connected: MerchantCtx,
    tmp_path: Path,
) -> None:
    if db_kind != "postgresql":
        pytest.skip("several worker processes share an inbox on PostgreSQL only")
    lifecycles = [
        sf.LIFECYCLES[name](1_760_000_000 + 1000 * i)
        for i in range(25)
        for name in sorted(sf.LIFECYCLES)
        if name != "account_requirements"
    ]
    in_order = [e for lc in lifecycles for e in lc.events]
    shuffled = in_order[:]
    random.Random(5).shuffle(shuffled)
    with db.write(runtime.engine) as conn:
        inbox.insert_new(
            conn, [inbox_item(connected, e, object_type=None) for e in shuffled], time.time()
        )

    env = process_env(
        settings,
        database_url,
        MERCHANT_BACKEND_WORKER_BATCH_SIZE="5",
        MERCHANT_BACKEND_WORKER_LEASE_SECONDS="1",
        MERCHANT_BACKEND_WORKER_POLL_INTERVAL="0.05",
    )
    victim = start(["worker"], env, tmp_path / "victim.log")
    survivor = start(["worker"], env, tmp_path / "survivor.log")
    try:
        # Freeze the victim at a moment it holds a lease, then kill it: mid-batch for sure.
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the victim never held a lease"
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            if leased_by(runtime, victim.pid):
                os.kill(victim.pid, signal.SIGSTOP)
                held = leased_by(runtime, victim.pid)
                if held:
                    break
                os.kill(victim.pid, signal.SIGCONT)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)

        def all_applied() -> bool:
            with db.read(runtime.engine) as conn:
                pending = conn.execute(
                    select(func.count()).where(events.c.state != "applied")
                ).scalar_one()
            assert survivor.poll() is None, (tmp_path / "survivor.log").read_text()
            return pending == 0

        wait_for(all_applied, timeout=90)
    finally:
        stop(survivor)
        stop(victim)

    with db.read(runtime.engine) as conn:
        attempts = {r[0]: r[1] for r in conn.execute(select(events.c.event_id, events.c.attempts))}
        history_rows = conn.execute(select(func.count()).select_from(object_events)).scalar_one()
    # The killed worker's leased events were taken over once; all others were claimed once.
    assert {attempts[e] for e in held} == {2}
    assert {n for e, n in attempts.items() if e not in held} == {1}
    # Exactly once in effect: the in-order state, one history row per event.
    assert history_rows == len(in_order)
    assert visible(projection(runtime.engine, connected.id)) == expected_projection(in_order)
    assert history(runtime.engine, connected.id) == expected_history(in_order)
