"""Several workers on one inbox (issue 3, item 4): each event is claimed by exactly one of them
and the projections end in the in-order state. Meant for PostgreSQL (``FOR UPDATE SKIP
LOCKED``); on SQLite the same test shows that the write lock serialises them just as safely."""

from __future__ import annotations

import random
import threading
from typing import Any

from fastapi.testclient import TestClient

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx
from tests.webhook_support import (
    expected_history,
    expected_projection,
    history,
    inbox_rows,
    post_ok,
    projection,
    visible,
    wait_for,
)


def test_two_workers_apply_every_event_exactly_once(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, db_kind: str
) -> None:
    t0 = 1_760_000_000
    lifecycles = [
        sf.LIFECYCLES[name](t0 + 1000 * i)
        for i in range(4)
        for name in sorted(sf.LIFECYCLES)
        if name != "account_requirements"
    ] + [sf.account_requirements(t0)]
    in_order = [evt for lc in lifecycles for evt in lc.events]
    shuffled = in_order[:]
    random.Random(3).shuffle(shuffled)
    for evt in shuffled:
        post_ok(client, connected.id, evt)

    # Small batches, so the two really take turns on the same objects.
    s = runtime.settings.model_copy(update={"worker_batch_size": 5})
    workers = [Worker(runtime.engine, s, worker_id=f"w{i}") for i in range(2)]
    start = threading.Barrier(len(workers))
    handled: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(w: Worker) -> None:
        try:
            start.wait()
            handled[w.worker_id] = w.drain()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(handled.values()) == len(in_order)
    if db_kind == "postgresql":
        # Side by side, not one after the other (SQLite's busy wait may let one take all).
        assert all(n > 0 for n in handled.values()), handled

    rows = inbox_rows(runtime.engine, connected.id)
    # Claimed once each: no event was leased by both workers.
    assert {(r.state, r.attempts) for r in rows} == {("applied", 1)}
    assert visible(projection(runtime.engine, connected.id)) == expected_projection(in_order)
    assert history(runtime.engine, connected.id) == expected_history(in_order)


def test_in_process_worker_of_serve_applies_deliveries(
    runtime: Runtime, connected: MerchantCtx
) -> None:
    """``serve`` runs the worker in a thread by default: deliveries get applied on their own."""
    s = runtime.settings.model_copy(update={"worker_poll_interval": 0.02})
    app = create_app(Runtime(s, engine=runtime.engine), run_worker=True)
    lc = sf.dispute_won(1_760_000_000)
    with TestClient(app) as client:
        for evt in lc.events:
            post_ok(client, connected.id, evt)

        def applied() -> Any:
            return {r.state for r in inbox_rows(runtime.engine, connected.id)} == {"applied"}

        wait_for(applied, timeout=20)
        r = client.get("/healthz")
        assert r.json()["checks"]["worker"] == "in-process"
    assert visible(projection(runtime.engine, connected.id)) == expected_projection(lc.events)
