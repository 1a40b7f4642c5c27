"""Every acceptance rule of the webhook endpoint (issue 3, items 1–2), one request each.

A rejected delivery answers the contract's status, changes no stored row, is logged with its
reason and counted both in /metrics and in the merchant's webhook_rejections table.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import merchant_backend.clock as seam
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.stripe.signature import sign
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import (
    LIVE_SIGNING_SECRET,
    SIGNING_SECRET,
    FakeClock,
    MerchantCtx,
    add_data_set,
    make_merchant,
)
from tests.webhook_support import (
    flush_rejections,
    inbox_rows,
    metric,
    post,
    rejections,
    store_rows,
    url,
)

REJECTED = "merchant_backend_webhook_rejections_total"


def a_event(livemode: bool = False, **kw: Any) -> dict[str, Any]:
    return sf.event("payment_intent.created", sf.payment_intent(), livemode=livemode, **kw)


@dataclass
class Req:
    body: bytes
    headers: dict[str, str]
    env: str = "stage"


def signed_req(
    evt: dict[str, Any] | bytes,
    *,
    secret: str = SIGNING_SECRET,
    t: int | None = None,
    env: str = "stage",
) -> Req:
    raw = evt if isinstance(evt, bytes) else orjson.dumps(evt)
    t = t or int(seam.now())
    # HMAC over the raw bytes, as Stripe computes it (works for bodies that are not UTF-8).
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return Req(raw, {"Stripe-Signature": f"t={t},v1={v1}"}, env)


def header_req(make_header: Callable[[bytes, int, str], str]) -> Req:
    """A request whose header is built from (body, now, a valid v1 signature)."""
    raw = orjson.dumps(a_event())
    t = int(seam.now())
    v1 = sign(raw, SIGNING_SECRET, t).split("v1=", 1)[1]
    return Req(raw, {"Stripe-Signature": make_header(raw, t, v1)})


def tampered() -> Req:
    req = signed_req(a_event())
    req.body = req.body.replace(b'"amount":1099', b'"amount":1')
    assert b'"amount":1,' in req.body
    return req


def non_event(mutate: Callable[[dict[str, Any]], None]) -> Req:
    evt = a_event()
    mutate(evt)
    return signed_req(evt)


# (case, request builder, status, reason in metrics and table, error code)
CASES: list[tuple[str, Callable[[], Req], int, str]] = [
    ("no header", lambda: Req(orjson.dumps(a_event()), {}), 400, "missing_signature"),
    (
        "empty header",
        lambda: Req(orjson.dumps(a_event()), {"Stripe-Signature": ""}),
        400,
        "missing_signature",
    ),
    ("garbage header", lambda: header_req(lambda b, t, v1: "garbage"), 400, "malformed_signature"),
    (
        "timestamp not a number",
        lambda: header_req(lambda b, t, v1: f"t=yesterday,v1={v1}"),
        400,
        "malformed_signature",
    ),
    (
        "empty part",
        lambda: header_req(lambda b, t, v1: f"t={t},v1="),
        400,
        "malformed_signature",
    ),
    (
        "duplicated t=",
        lambda: header_req(lambda b, t, v1: f"t={t},t={t},v1={v1}"),
        400,
        "malformed_signature",
    ),
    (
        "two different t=",
        lambda: header_req(lambda b, t, v1: f"t={t - 1},t={t},v1={v1}"),
        400,
        "malformed_signature",
    ),
    (
        "no v1, only v0",
        lambda: header_req(lambda b, t, v1: f"t={t},v0={v1}"),
        400,
        "malformed_signature",
    ),
    ("no v1 at all", lambda: header_req(lambda b, t, v1: f"t={t}"), 400, "malformed_signature"),
    (
        "wrong secret",
        lambda: signed_req(a_event(), secret="whsec_" + "0" * 32),
        400,
        "bad_signature",
    ),
    (
        "signature of another timestamp",
        lambda: header_req(lambda b, t, v1: f"t={t + 1},v1={v1}"),
        400,
        "bad_signature",
    ),
    ("tampered body", tampered, 400, "bad_signature"),
    (
        "stale timestamp",
        lambda: signed_req(a_event(), t=int(seam.now()) - 301),
        400,
        "timestamp_out_of_tolerance",
    ),
    (
        "future timestamp",
        lambda: signed_req(a_event(), t=int(seam.now()) + 301),
        400,
        "timestamp_out_of_tolerance",
    ),
    ("live event to stage", lambda: signed_req(a_event(livemode=True)), 400, "livemode_mismatch"),
    (
        "test event to live",
        lambda: signed_req(a_event(livemode=False), secret=LIVE_SIGNING_SECRET, env="live"),
        400,
        "livemode_mismatch",
    ),
    (
        "another account",
        lambda: signed_req(a_event(account="acct_1SomeoneElse")),
        400,
        "account_mismatch",
    ),
    ("not JSON", lambda: signed_req(b"id=evt_123&type=x"), 400, "not_an_event"),
    ("not UTF-8", lambda: signed_req(b"\xff\xfe{}"), 400, "not_an_event"),
    ("JSON list", lambda: signed_req(b"[]"), 400, "not_an_event"),
    (
        "an object, not an event",
        lambda: signed_req(sf.payment_intent()),
        400,
        "not_an_event",
    ),
    (
        "id without evt_",
        lambda: non_event(lambda e: e.update(id="pi_123")),
        400,
        "not_an_event",
    ),
    ("no type", lambda: non_event(lambda e: e.pop("type")), 400, "not_an_event"),
    ("no data.object", lambda: non_event(lambda e: e.update(data={})), 400, "not_an_event"),
    (
        "created not a timestamp",
        lambda: non_event(lambda e: e.update(created="2026-01-01")),
        400,
        "not_an_event",
    ),
    ("no livemode", lambda: non_event(lambda e: e.pop("livemode")), 400, "not_an_event"),
    (
        "oversized",
        lambda: signed_req(orjson.dumps({**a_event(), "pad": "x" * (1024 * 1024)})),
        413,
        "too_large",
    ),
]


@pytest.mark.parametrize(("case", "build", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rejection_changes_nothing_and_is_counted(
    client: TestClient,
    runtime: Runtime,
    connected: MerchantCtx,
    worker: Worker,
    case: str,
    build: Callable[[], Req],
    status: int,
    reason: str,
    clock: FakeClock,
) -> None:
    clock.freeze()  # the request is built and checked at the same second
    req = build()
    before = store_rows(runtime.engine)
    counted = metric(client, REJECTED, env=req.env, reason=reason)
    r = client.post(url(connected.id, req.env), content=req.body, headers=req.headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == ("payload_too_large" if status == 413 else reason)
    assert SIGNING_SECRET not in r.text and LIVE_SIGNING_SECRET not in r.text
    assert worker.drain() == 0
    flush_rejections(client)
    assert store_rows(runtime.engine) == before
    assert metric(client, REJECTED, env=req.env, reason=reason) == counted + 1
    assert rejections(runtime.engine, connected.id) == {(req.env, reason): 1}


def test_oversized_chunked_body_is_cut_off_at_the_limit(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    """Without a Content-Length the limit still holds while the body streams in."""
    before = store_rows(runtime.engine)

    def chunks() -> Any:
        yield orjson.dumps(a_event())[:-1]
        for _ in range(20):
            yield b" " * 65536
        yield b"}"

    r = client.post(url(connected.id), content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 413
    flush_rejections(client)
    assert store_rows(runtime.engine) == before
    assert rejections(runtime.engine, connected.id) == {("stage", "too_large"): 1}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/webhooks/stripe/mer_doesnotexist/stage", "unknown_merchant"),
        ("/webhooks/stripe/{m}/production", "unknown_env"),
    ],
)
def test_unknown_merchant_or_environment_is_404_and_counted(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, path: str, reason: str
) -> None:
    req = signed_req(a_event())
    before = store_rows(runtime.engine)
    env_label = "stage" if reason == "unknown_merchant" else "unknown"
    counted = metric(client, REJECTED, env=env_label, reason=reason)
    r = client.post(path.format(m=connected.id), content=req.body, headers=req.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    flush_rejections(client)
    assert store_rows(runtime.engine) == before
    assert metric(client, REJECTED, env=env_label, reason=reason) == counted + 1
    # No merchant to file it under: only the metric and the log have it.
    assert rejections(runtime.engine, connected.id) == {}


def test_environment_without_data_set_is_404_and_counted_for_the_merchant(
    client: TestClient, runtime: Runtime
) -> None:
    only_stage = make_merchant(runtime, "Stage only")
    add_data_set(runtime, only_stage.id, "stage")
    req = signed_req(a_event(livemode=True), secret=LIVE_SIGNING_SECRET)
    before = store_rows(runtime.engine)
    r = client.post(url(only_stage.id, "live"), content=req.body, headers=req.headers)
    assert r.status_code == 404
    # The same answer as for a merchant that does not exist.
    assert r.json()["error"]["message"] == "unknown merchant, or no data set for this environment"
    flush_rejections(client)
    assert store_rows(runtime.engine) == before
    assert rejections(runtime.engine, only_stage.id) == {("live", "no_data_set"): 1}


# ---- what must still be accepted --------------------------------------------------------


@pytest.mark.parametrize(
    "make_header",
    [
        lambda t, v1: f"t={t},v0=6ffbb59b2300aae63f27240688ad7fd4f0e5f0c0,v1={v1}",
        lambda t, v1: f"v1={v1},t={t}",
        lambda t, v1: f"t={t},v1={'0' * 64},v1={v1}",
        lambda t, v1: f"t={t},v1={v1},scheme=future",
    ],
    ids=["other scheme ignored", "any order", "one of several v1", "unknown part ignored"],
)
def test_headers_stripe_may_send_are_accepted(
    client: TestClient, runtime: Runtime, connected: MerchantCtx, make_header: Any
) -> None:
    req = header_req(lambda b, t, v1: make_header(t, v1))
    r = client.post(url(connected.id), content=req.body, headers=req.headers)
    assert r.status_code == 200, r.text
    assert len(inbox_rows(runtime.engine, connected.id)) == 1


@pytest.mark.parametrize("offset", [-299, 299])
def test_timestamps_within_the_tolerance_are_accepted(
    client: TestClient, connected: MerchantCtx, offset: int, clock: FakeClock
) -> None:
    r = post(client, connected.id, a_event(), timestamp=clock.freeze() + offset)
    assert r.status_code == 200, r.text


def test_live_event_on_live_and_matching_account_are_accepted(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    evt = a_event(livemode=True, account="acct_1PgafTB7WZ01zgkW")
    r = post(client, connected.id, evt, env="live", secret=LIVE_SIGNING_SECRET)
    assert r.status_code == 200, r.text
    assert len(inbox_rows(runtime.engine, connected.id, "live")) == 1
    assert inbox_rows(runtime.engine, connected.id, "stage") == []


def test_previous_secret_is_valid_during_a_roll_and_rejected_after_it_expires(
    client: TestClient,
    runtime: Runtime,
    connected: MerchantCtx,
    clock: FakeClock,
) -> None:
    new_secret = "whsec_" + "n3w" * 10
    with db.write(runtime.engine) as conn:
        datasets.roll_signing_secret(
            conn, runtime.keys.get(), connected.id, "stage", new_secret, old_valid_for=600
        )
    # During the roll Stripe signs with both; either signature alone is enough.
    assert post(client, connected.id, a_event(), secret=new_secret).status_code == 200
    assert post(client, connected.id, a_event(), secret=SIGNING_SECRET).status_code == 200
    raw = orjson.dumps(a_event())
    t = int(time.time())
    both = f"{sign(raw, new_secret, t)},v1={sign(raw, SIGNING_SECRET, t).split('v1=')[1]}"
    r = client.post(url(connected.id), content=raw, headers={"Stripe-Signature": both})
    assert r.status_code == 200

    later = clock.set(time.time() + 601)
    assert (
        post(client, connected.id, a_event(), secret=new_secret, timestamp=int(later)).status_code
        == 200
    )
    before = store_rows(runtime.engine)
    r = post(client, connected.id, a_event(), secret=SIGNING_SECRET, timestamp=int(later))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_signature"
    flush_rejections(client)
    assert store_rows(runtime.engine) == before
    assert rejections(runtime.engine, connected.id) == {("stage", "bad_signature"): 1}


class RecordingLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.entries.append(("warning", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.entries.append(("error", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.entries.append(("info", event, kw))


def test_rejections_are_logged_with_reason_but_never_the_secret(
    client: TestClient, connected: MerchantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = RecordingLog()
    monkeypatch.setattr("merchant_backend.api.webhooks.log", log)
    wrong = "whsec_" + "f" * 32
    post(client, connected.id, a_event(livemode=True))
    post(client, connected.id, a_event(), secret=wrong)
    client.post("/webhooks/stripe/mer_nobody/stage", content=b"{}")
    assert [(level, event, kw["reason"]) for level, event, kw in log.entries] == [
        ("warning", "webhook rejected", "livemode_mismatch"),
        ("warning", "webhook rejected", "bad_signature"),
        ("warning", "webhook rejected", "unknown_merchant"),
    ]
    assert all(kw.get("merchant_id") for _, _, kw in log.entries)
    assert "live" in log.entries[0][2]["detail"]
    text = repr(log.entries)
    assert SIGNING_SECRET not in text
    assert wrong not in text
