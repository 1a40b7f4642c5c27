"""Fairness: one merchant's storm must not hold back another merchant's payment.

The default ``serve`` (worker inside) with two merchants; 20,000 events of merchant A are put
in the inbox in one transaction (a migration, 30 days of reconcile), and right after that one
signed delivery of merchant B goes through the webhook endpoint. Printed: how long B's event
waited from its 2xx to its projection (``applied_at - received_at``), against how long A's
backlog took to apply — what B would have waited with the claim in arrival order.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from sqlalchemy import text

from bench import events
from bench.ingest import ACCOUNT, SIGNING_SECRET, _cli, prepare_service
from bench.procs import Children, free_port, python, wait_http
from merchant_backend.clock import now
from merchant_backend.store import db, inbox
from merchant_backend.store.db import create_db_engine
from merchant_backend.stripe.webhook_event import parse_event


@dataclass(frozen=True)
class FairnessFigures:
    label: str
    backlog: int
    b_lag_ms: float  # B's event: 2xx → applied
    a_drain_s: float  # A's backlog: inserted → last one applied
    batch_size: int


def run_case(
    children: Children, workdir: Path, label: str, database_url: str, *, backlog: int
) -> FairnessFigures:
    env, merchant_a = prepare_service(workdir, database_url)
    merchant_b = str(_cli(env, "merchants", "create", "--name", "Quiet Shop")["id"])
    _cli(
        {
            **env,
            "MERCHANT_BACKEND_SECRET_KEY": "sk_test_" + secrets.token_hex(12),
            "MERCHANT_BACKEND_SIGNING_SECRET": SIGNING_SECRET,
        },
        "stripe",
        "set",
        "--merchant",
        merchant_b,
        "--env",
        "stage",
        "--account-id",
        ACCOUNT,
        "--publishable-key",
        "pk_test_" + secrets.token_hex(12),
    )
    port = free_port()
    exe = str(Path(python()).with_name("merchant-backend"))
    proc = children.start(
        f"fairness-{label}", [exe, "serve", "--port", str(port)], env=env, cpus={0}
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)

    builder = events.Builder(secrets.token_hex(3), account=ACCOUNT)
    start = int(time.time()) - 86400
    storm = events.take(builder, ACCOUNT, backlog, start)
    items = []
    for evt in storm:
        raw = orjson.dumps(evt)
        parsed = parse_event(raw)
        items.append(inbox.NewEvent.of(parsed, merchant_a, "stage", raw, "webhook"))
    engine = create_db_engine(database_url)
    try:
        with db.write(engine) as conn:
            inbox.insert_new(conn, items, now())
        stormed = time.time()
        (quiet,) = events.take(builder, ACCOUNT, 1, start + backlog + 10)
        body, header = events.signed_bodies([quiet], SIGNING_SECRET, int(time.time()))[0]
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/stripe/{merchant_b}/stage",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            timeout=30,
        )
        answer.raise_for_status()
        deadline = time.monotonic() + 600
        while True:
            with engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM events WHERE state NOT IN ('applied', 'ignored')")
                ).scalar_one()
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"fairness: {left} events never applied")
            time.sleep(0.05)
        with engine.connect() as conn:
            b_received, b_applied = conn.execute(
                text("SELECT received_at, applied_at FROM events WHERE merchant_id = :m"),
                {"m": merchant_b},
            ).one()
            a_last = conn.execute(
                text("SELECT max(applied_at) FROM events WHERE merchant_id = :m"),
                {"m": merchant_a},
            ).scalar_one()
    finally:
        engine.dispose()
        children.stop(proc)
    return FairnessFigures(
        label=label,
        backlog=backlog,
        b_lag_ms=(b_applied - b_received) * 1000,
        a_drain_s=a_last - stormed,
        batch_size=500,  # MERCHANT_BACKEND_WORKER_BATCH_SIZE's default
    )
