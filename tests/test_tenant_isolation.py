"""Issue 9, "How it is shown": one merchant's poisoned events never fail another's.

Two merchants on a real ``merchant-backend serve``. Merchant A floods correctly signed events
whose values do not fit what we store (each kind the security review found, and the ones next
to them) while merchant B sends valid events at the same time: every one of B's answers 200
and is applied; every one of A's is refused alone with 400 and a reason.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
from collections.abc import Callable, Iterator
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
from tests.conftest import SIGNING_SECRET, add_data_set, make_merchant
from tests.foundation_helpers import free_port
from tests.webhook_support import process_env, projection, start, stop, wait_for

pytestmark = pytest.mark.slow

Mutation = Callable[[dict[str, Any]], None]


def _set(*path_and_value: Any) -> Mutation:
    *path, value = path_and_value

    def mutate(evt: dict[str, Any]) -> None:
        target = evt
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


# Each kind of poisoned-but-signed event: (what, the event's type, the change).
POISONED: list[tuple[str, str, Mutation]] = [
    ("created past 64 bits", "payment_intent.created", _set("created", 2**63)),
    ("created far in the future", "payment_intent.created", _set("created", 2**62)),
    ("created before Stripe", "payment_intent.created", _set("created", 5)),
    (
        "object longer than its column",
        "charge.succeeded",
        _set("data", "object", "object", "o" * 41),
    ),
    (
        "object id longer than 255",
        "charge.succeeded",
        _set("data", "object", "id", "ch_" + "x" * 253),
    ),
    ("event id longer than 255", "payment_intent.created", _set("id", "evt_" + "x" * 252)),
    ("type longer than 120", "payment_intent.created", _set("type", "t" * 121)),
    ("NUL in the event id", "payment_intent.created", _set("id", "evt_\x00abc")),
    ("NUL in the type", "charge.succeeded", _set("type", "charge.\x00succeeded")),
    ("NUL in the object", "charge.succeeded", _set("data", "object", "object", "ch\x00arge")),
    ("NUL in the object id", "charge.succeeded", _set("data", "object", "id", "ch_\x00")),
    ("status longer than 40", "payment_intent.created", _set("data", "object", "status", "s" * 41)),
    ("NUL in the status", "payment_intent.created", _set("data", "object", "status", "a\x00b")),
    (
        "currency longer than 3",
        "payment_intent.created",
        _set("data", "object", "currency", "usdx"),
    ),
    ("amount past 64 bits", "payment_intent.created", _set("data", "object", "amount", 2**63)),
    # orjson reads an integer past 2**64 - 1 as a float: refused, never stored as "no amount".
    (
        "amount past 64 unsigned bits",
        "payment_intent.created",
        _set("data", "object", "amount", 2**64),
    ),
    ("amount with a fraction", "payment_intent.created", _set("data", "object", "amount", 20.5)),
    ("amount as a string", "payment_intent.created", _set("data", "object", "amount", "2000")),
    ("amount true", "payment_intent.created", _set("data", "object", "amount", True)),
    (
        "object created with a fraction",
        "payment_intent.created",
        _set("data", "object", "created", 1.5e9),
    ),
    (
        "dispute transaction amount with a fraction",
        "charge.dispute.created",
        _set("data", "object", "balance_transactions", 0, "amount", -10.5),
    ),
    (
        "object created past 64 bits",
        "payment_intent.created",
        _set("data", "object", "created", 2**63),
    ),
    (
        "customer id longer than 255",
        "payment_intent.created",
        _set("data", "object", "customer", "cus_" + "c" * 252),
    ),
    (
        "NUL in the customer id",
        "payment_intent.created",
        _set("data", "object", "customer", "\x00"),
    ),
]


def poisoned_event(type_: str, mutate: Mutation) -> dict[str, Any]:
    if type_.startswith("charge.dispute."):
        # A dispute with its withdrawal transaction embedded, as funds_withdrawn carries it.
        withdrawn = sf.dispute_won(1_700_000_000).events[1]["data"]["object"]
        evt = sf.event(type_, withdrawn)
    else:
        evt = sf.event(type_, sf.payment_intent())
    mutate(evt)
    return evt


@pytest.fixture
def serve(
    settings: Settings, server_db: tuple[str, Engine], tmp_path: Path
) -> Iterator[tuple[str, Runtime]]:
    """A real ``serve`` (with its worker) on the test database: (base URL, runtime)."""
    url, engine = server_db
    rt = Runtime(settings.model_copy(update={"database_url": url}), engine=engine)
    env = process_env(settings, url, MERCHANT_BACKEND_WORKER_POLL_INTERVAL="0.05")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = start(["serve", "--port", str(port)], env, log)

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.05)
        yield base, rt
    finally:
        stop(proc)


def states(engine: Engine, merchant_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.event_id, events_table.c.state).where(
                events_table.c.merchant_id == merchant_id
            )
        )
        return {r.event_id: r.state for r in rows}


def test_a_flood_of_poisoned_events_never_fails_another_merchants_webhooks(
    serve: tuple[str, Runtime],
) -> None:
    base, rt = serve
    a, b = make_merchant(rt, "Attacker"), make_merchant(rt, "Bystander")
    add_data_set(rt, a.id, "stage")
    add_data_set(rt, b.id, "stage")
    rounds = 3
    bad = [
        (what, poisoned_event(type_, mutate))
        for _ in range(rounds)
        for what, type_, mutate in POISONED
    ]
    good = [sf.event("payment_intent.created", sf.payment_intent()) for _ in range(len(bad) // 2)]
    # Interleaved, so that A's and B's deliveries share the server's group commits.
    work: list[tuple[str, str, dict[str, Any]]] = [
        item
        for pair in itertools.zip_longest(
            [("A", what, evt) for what, evt in bad], [("B", "valid", evt) for evt in good]
        )
        for item in pair
        if item is not None
    ]
    http = httpx.Client(timeout=30)

    def deliver(item: tuple[str, str, dict[str, Any]]) -> tuple[str, str, int, str]:
        who, what, evt = item
        # The standard library's JSON, which writes integers of any size (orjson stops at 64 bits).
        raw, header = sf.signed(json.dumps(evt).encode(), SIGNING_SECRET)
        merchant = a if who == "A" else b
        r = http.post(
            f"{base}/webhooks/stripe/{merchant.id}/stage",
            content=raw,
            headers={"Stripe-Signature": header},
        )
        return who, what, r.status_code, r.text

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(deliver, work))
    finally:
        http.close()

    b_answers = [(status, text) for who, _, status, text in answers if who == "B"]
    assert [s for s, _ in b_answers] == [200] * len(good), b_answers
    a_wrong = [
        (what, status, text) for who, what, status, text in answers if who == "A" and status != 400
    ]
    assert a_wrong == []
    # Refused alone, each with a reason that says what is wrong.
    assert all('"not_an_event"' in text for who, _, _, text in answers if who == "A")

    expected = {evt["id"] for evt in good}
    wait_for(
        lambda: set(states(rt.engine, b.id).items()) == {(e, "applied") for e in expected},
        timeout=60,
        what="every one of B's events applied",
    )
    assert set(projection(rt.engine, b.id)) == {evt["data"]["object"]["id"] for evt in good}
    assert states(rt.engine, a.id) == {}


def _raw_request(base: str, head: bytes, timeout: float = 30.0) -> bytes:
    """Send ``head`` on a raw socket (no client library would send such a thing); the reply."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        # The server may close as soon as it has answered.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("what", "head"),
    [
        (
            "a 32 MiB header",
            b"POST /webhooks/stripe/mer_x/stage HTTP/1.1\r\nHost: t\r\nX-Big: "
            + b"a" * (32 * 1024 * 1024)
            + b"\r\nContent-Length: 2\r\n\r\n{}",
        ),
        (
            "a 1 MiB request line",
            b"GET /healthz?" + b"q" * (1024 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        (
            "many small headers",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 20_000 + b"\r\n",
        ),
    ],
)
def test_request_line_and_headers_are_bounded_before_any_body_is_read(
    serve: tuple[str, Runtime], what: str, head: bytes
) -> None:
    base, _rt = serve
    reply = _raw_request(base, head)
    status = reply.split(b"\r\n", 1)[0]
    assert status.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), (what, reply[:300])
    # The server is still there for everyone else.
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    # A normal request with the largest head we accept still goes through.
    ok = _raw_request(
        base,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Fill: "
        + b"f" * 30_000
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200"), ok[:300]
