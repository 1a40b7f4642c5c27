"""Crash tests (issue 3, "How it is shown"): two ``merchant-backend worker`` processes on one
PostgreSQL inbox, one killed with SIGKILL while it holds leased events. The other takes them
over when the lease runs out; every event ends applied exactly once in effect. On SQLite, a
worker killed inside a batch's transaction (it takes no lease there)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, make_url, select

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.store.schema import events, object_events
from merchant_backend.sync.worker import Worker
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


def _fill_inbox(runtime: Runtime, connected: MerchantCtx, *, seed: int) -> list[dict[str, Any]]:
    """25 rounds of every lifecycle's events in the inbox, shuffled; returns them in order."""
    lifecycles = [
        sf.LIFECYCLES[name](1_760_000_000 + 1000 * i)
        for i in range(25)
        for name in sorted(sf.LIFECYCLES)
        if name != "account_requirements"
    ]
    in_order = [e for lc in lifecycles for e in lc.events]
    shuffled = in_order[:]
    random.Random(seed).shuffle(shuffled)
    with db.write(runtime.engine) as conn:
        inbox.insert_new(
            conn, [inbox_item(connected, e, object_type=None) for e in shuffled], time.time()
        )
    return in_order


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
    in_order = _fill_inbox(runtime, connected, seed=5)

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


def _write_locked(path: str) -> bool:
    """Whether another connection holds SQLite's write lock (a writing transaction is open)."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()  # rolls back the probe's own empty transaction
    return False


def _applied(runtime: Runtime) -> int:
    with db.read(runtime.engine) as conn:
        return int(
            conn.execute(select(func.count()).where(events.c.state == "applied")).scalar_one()
        )


def test_sqlite_worker_killed_mid_transaction_leaves_its_batch_due_at_once(
    db_kind: str,
    database_url: str,
    settings: Settings,
    runtime: Runtime,
    connected: MerchantCtx,
    tmp_path: Path,
) -> None:
    """SQLite's worker takes, applies and marks a batch in one transaction, with no lease:
    killed inside it, nothing of the batch is applied or counted as an attempt, and the next
    worker applies it at once (no lease to wait out)."""
    if db_kind != "sqlite":
        pytest.skip("SQLite's worker (one transaction per batch, no lease)")
    path = make_url(database_url).database
    assert path is not None
    in_order = _fill_inbox(runtime, connected, seed=7)
    env = process_env(
        settings,
        database_url,
        MERCHANT_BACKEND_WORKER_BATCH_SIZE="5",
        MERCHANT_BACKEND_WORKER_POLL_INTERVAL="0.05",
    )
    victim = start(["worker"], env, tmp_path / "victim.log")
    try:
        # Once it has applied a batch (its start-up writes are behind it), freeze the victim
        # while it holds the write lock, then kill it: inside a batch's transaction for sure
        # (nothing else writes to this database now).
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the victim was never seen inside a transaction"
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            if _applied(runtime) and _write_locked(path):
                os.kill(victim.pid, signal.SIGSTOP)
                if _write_locked(path):
                    break
                os.kill(victim.pid, signal.SIGCONT)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        stop(victim)

    killed_at = time.time()
    with db.read(runtime.engine) as conn:
        rows = conn.execute(
            select(events.c.event_id, events.c.state, events.c.attempts, events.c.next_attempt_at)
        ).all()
        recorded = {r[0] for r in conn.execute(select(object_events.c.event_id))}
    waiting = [r for r in rows if r.state != "applied"]
    assert waiting, "the victim applied everything before it was killed"
    # Nothing half-applied: an event has history exactly when it is marked applied; the
    # killed batch is as it was before, its attempt not counted, and due now.
    assert {r.event_id for r in rows if r.state == "applied"} == recorded
    assert {(r.state, r.attempts) for r in waiting} == {("pending", 0)}
    assert all(r.next_attempt_at <= killed_at for r in waiting)

    s = settings.model_copy(update={"worker_batch_size": 5})
    assert Worker(runtime.engine, s).drain() == len(waiting)
    with db.read(runtime.engine) as conn:
        attempts = {r[0] for r in conn.execute(select(events.c.attempts))}
        history_rows = conn.execute(select(func.count()).select_from(object_events)).scalar_one()
    assert attempts == {1}
    assert history_rows == len(in_order)
    assert visible(projection(runtime.engine, connected.id)) == expected_projection(in_order)
    assert history(runtime.engine, connected.id) == expected_history(in_order)
