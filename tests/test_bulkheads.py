"""Bulkheads on a real ``merchant-backend serve`` (issue 9, "How it is shown"): Stripe accepts
connections and never answers; merchant A floods the routes that call Stripe; merchant B's
reads are answered while A's Stripe calls are still hanging, and A gets 429s, not timeouts
for everyone.

Nothing here races the clock: "B is not queued behind A" is shown by B's reads all being
answered while the server reports A's Stripe calls still in flight; the only time bound is a
generous one on A's hanging calls coming back (the per-request Stripe budget).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx, add_data_set, make_merchant
from tests.foundation_helpers import free_port
from tests.silent_stripe import silent_stripe
from tests.web_support import csrf_of, sign_in
from tests.webhook_support import process_env, start, stop, wait_for

pytestmark = pytest.mark.slow

PER_MERCHANT = 4
TOTAL = 8
BUDGET = 15


def stripe_in_flight(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "merchant_backend_bulkhead_in_use":
            for sample in family.samples:
                if sample.labels.get("bulkhead") == "stripe":
                    return float(sample.value)
    return 0.0


def test_a_flood_of_stripe_calls_from_one_merchant_neither_queues_nor_slows_another(
    settings: Settings, server_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = server_db
    rt = Runtime(settings.model_copy(update={"database_url": url}), engine=engine)
    a: MerchantCtx = make_merchant(rt, "Flooding shop")
    b: MerchantCtx = make_merchant(rt, "Quiet shop")
    for m in (a, b):
        add_data_set(rt, m.id, "stage")

    with silent_stripe() as stripe_base:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = process_env(
            settings,
            url,
            MERCHANT_BACKEND_STRIPE_API_BASE=stripe_base,
            # Without the budget each verify would hang 3 tries × 60 s.
            MERCHANT_BACKEND_STRIPE_TIMEOUT="60",
            MERCHANT_BACKEND_STRIPE_MAX_NETWORK_RETRIES="2",
            MERCHANT_BACKEND_STRIPE_REQUEST_BUDGET=str(BUDGET),
            MERCHANT_BACKEND_STRIPE_CONCURRENCY=str(TOTAL),
            MERCHANT_BACKEND_STRIPE_CONCURRENCY_PER_MERCHANT=str(PER_MERCHANT),
        )
        log = tmp_path / "serve.log"
        proc = start(["serve", "--port", str(port), "--no-worker"], env, log)
        try:
            wait_for(lambda: _healthy(base, proc, log), timeout=60, interval=0.05, what="serve")
            _flood_and_read(base, a, b)
        finally:
            stop(proc)


def _healthy(base: str, proc: Any, log: Path) -> bool:
    assert proc.poll() is None, log.read_text()[-3000:]
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _flood_and_read(base: str, a: MerchantCtx, b: MerchantCtx) -> None:
    verify_a = f"{base}/api/v1/merchants/{a.id}/stripe/stage/verify"
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def verify(m: MerchantCtx, target: str) -> None:
        r = httpx.post(target, headers=m.auth, timeout=BUDGET * 8)
        with lock:
            answers.append(r)

    pool = ThreadPoolExecutor(max_workers=64)
    # A's first calls take every slot A has; they hang on Stripe.
    hanging = [pool.submit(verify, a, verify_a) for _ in range(PER_MERCHANT)]
    wait_for(
        lambda: stripe_in_flight(base) == PER_MERCHANT,
        timeout=60,
        what="A's calls to be waiting on Stripe",
    )

    # The flood: 45 more from A at once (45 was enough to starve everyone before).
    flood = [pool.submit(verify, a, verify_a) for _ in range(45)]
    for f in flood:
        f.result(timeout=120)
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) == 45, sorted(r.status_code for r in answers)
    for r in refused:
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "busy"

    # B's reads, one after another, while A's calls still hang.
    latencies: list[float] = []
    with httpx.Client(base_url=base, headers=b.auth, timeout=60) as client:
        for i in range(200):
            path = (
                f"/api/v1/merchants/{b.id}/stage/payment-intents"
                if i % 2
                else f"/api/v1/merchants/{b.id}/stripe/stage"
            )
            started = time.perf_counter()
            r = client.get(path)
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        # The sign-in page and Stripe's webhooks are answered too, while A's calls hang.
        assert client.get("/sign-in").status_code == 200
        for i in range(5):
            evt = sf.LIFECYCLES["pi_succeeds"](1_760_000_000 + i).events[0]
            raw, header = sf.signed(evt, SIGNING_SECRET)
            delivered = client.post(
                f"/webhooks/stripe/{b.id}/stage",
                content=raw,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            assert delivered.status_code == 200, delivered.text
        # B is not refused for A's flood: B's own Stripe call is admitted (it then hangs too).
        b_verify = pool.submit(verify, b, f"{base}/api/v1/merchants/{b.id}/stripe/stage/verify")
        wait_for(
            lambda: stripe_in_flight(base) == PER_MERCHANT + 1,
            timeout=60,
            what="B's call to be admitted",
        )
    # Every read of B was answered while all of A's calls were still waiting on Stripe.
    assert not any(f.done() for f in hanging), "A's calls ended before B's reads did"
    assert stripe_in_flight(base) == PER_MERCHANT + 1

    # The budget ends A's hanging calls (and B's): 504 stripe_timeout, not 3 × 60 s.
    ended_at = time.monotonic()
    for f in [*hanging, b_verify]:
        f.result(timeout=BUDGET * 6)
    assert time.monotonic() - ended_at < BUDGET * 6
    timed_out = [r for r in answers if r.status_code == 504]
    assert len(timed_out) == PER_MERCHANT + 1
    assert {r.json()["error"]["code"] for r in timed_out} == {"stripe_timeout"}
    pool.shutdown()
    assert stripe_in_flight(base) == 0

    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"\nB's reads during A's flood: n={len(ms)} p50={p50:.1f} ms p99={p99:.1f} ms")


def test_a_full_bulkhead_answers_the_web_with_a_page_that_says_so(
    runtime: Runtime, app: Any, connected: MerchantCtx
) -> None:
    with TestClient(app, base_url="https://testserver") as web:
        with silent_stripe() as stripe_base:
            runtime.settings = runtime.settings.model_copy(
                update={
                    "stripe_api_base": stripe_base,
                    "stripe_timeout": 120.0,
                    "stripe_max_network_retries": 0,
                    "stripe_concurrency_per_merchant": 1,
                }
            )
            # The merchant's one slot: an API verify that hangs on Stripe.
            hanging = ThreadPoolExecutor(1).submit(
                web.post,
                f"/api/v1/merchants/{connected.id}/stripe/stage/verify",
                headers=connected.auth,
            )
            wait_for(lambda: runtime.stripe_bulkhead.in_use(connected.id) == 1, timeout=60)
            sign_in(web, connected.token)
            csrf = csrf_of(web, f"/m/{connected.id}/stage/stripe")
            r = web.post(
                f"/m/{connected.id}/stage/stripe/verify",
                data={"csrf_token": csrf},
                follow_redirects=False,
            )
            assert r.status_code == 429
            assert int(r.headers["Retry-After"]) >= 1
            assert "Nothing was sent to Stripe" in r.text
            # Pages that do not call Stripe are not held up.
            assert web.get(f"/m/{connected.id}/stage/payments").status_code == 200
            assert not hanging.done()
        # The silent Stripe has closed its connections: the hanging call ends (a Stripe error).
        assert hanging.result(timeout=120).status_code in (502, 504)
    assert runtime.stripe_bulkhead.in_use() == 0
