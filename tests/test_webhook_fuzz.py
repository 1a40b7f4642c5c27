"""Issue 9, item 7: the webhook fuzzed with Hypothesis.

Merchant A sends arbitrary bytes, arbitrary JSON and events with arbitrary values in every field
we read, all correctly signed; merchant B sends a valid event at the same moment (so that the
two share group commits). A gets 200 or 4xx, never 5xx; B always gets 200, and the worker
applies B's event whatever A's did to the batch. On SQLite and PostgreSQL (``--db``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox
from merchant_backend.sync.worker import Worker
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests import stripe_factory as sf
from tests.conftest import SIGNING_SECRET, MerchantCtx
from tests.webhook_support import connected_merchant, post, url

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Arbitrary JSON: integers of any size, floats with NaN and infinities, any text (NUL, lone
# surrogates, line breaks), nested lists and objects.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=300)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)

# The fields we read or store, where a hostile value does the most harm.
ENVELOPE = [("id",), ("type",), ("created",), ("livemode",), ("account",), ("object",), ("data",)]
OBJECT = [
    ("data", "object"),
    *(
        ("data", "object", k)
        for k in (
            "id",
            "object",
            "status",
            "currency",
            "amount",
            "created",
            "customer",
            "payment_intent",
            "charge",
            "balance_transactions",
            "last_payment_error",
            "metadata",
        )
    ),
]
READS = [
    "{base}/account",
    "{base}/payment-intents",
    "{base}/customers",
    "{base}/payment-methods",
    "{base}/disputes",
]
handled_types = st.sampled_from(sorted(HANDLED_EVENTS))


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """A genuine test-mode event with some fields replaced by arbitrary JSON or left out."""
    kind = draw(st.sampled_from(["payment_intent", "customer", "dispute", "account"]))
    type_ = draw(st.text(max_size=130) if draw(st.integers(0, 3)) == 0 else handled_types)
    obj = sf.payment_intent() if kind == "payment_intent" else sf.obj(kind)
    evt = sf.event(type_, obj)
    # Mostly the object's fields: a broken envelope is refused early, an object reaches the
    # inbox, the worker and the projections.
    paths = draw(st.lists(st.sampled_from(OBJECT), min_size=1, max_size=4, unique=True))
    if draw(st.integers(0, 3)) == 0:
        paths.append(draw(st.sampled_from(ENVELOPE)))
    for path in paths:
        target: Any = evt
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target[path[-1]] = draw(json_values)
        else:
            target.pop(path[-1], None)
    return evt


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text of any value (the standard library: integers of any size, NaN, surrogates)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


bodies = (
    st.binary(max_size=2000)
    | st.tuples(json_values, st.booleans()).map(lambda v: encode(*v))
    | st.tuples(hostile_events(), st.booleans()).map(lambda v: encode(*v))
)


def signed_header(body: bytes, secret: str = SIGNING_SECRET) -> str:
    """Stripe's scheme on raw bytes (the SDK's signer takes text only)."""
    t = int(time.time())
    mac = hmac.new(secret.encode(), b"%d.%b" % (t, body), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@pytest.fixture
def pair(runtime: Runtime) -> tuple[MerchantCtx, MerchantCtx]:
    return connected_merchant(runtime, "A"), connected_merchant(runtime, "B")


@FUZZ
@given(body=bodies)
def test_any_signed_body_is_200_or_4xx_and_never_fails_another_merchant(
    client: TestClient,
    runtime: Runtime,
    worker: Worker,
    pair: tuple[MerchantCtx, MerchantCtx],
    body: bytes,
) -> None:
    a, b = pair
    valid = sf.event("payment_intent.created", sf.payment_intent())

    def from_a() -> Any:
        return client.post(
            url(a.id), content=body, headers={"Stripe-Signature": signed_header(body)}
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        got_a = pool.submit(from_a)
        got_b = pool.submit(post, client, b.id, copy.deepcopy(valid))
        answer_a, answer_b = got_a.result(), got_b.result()
    # What the fuzzer reached (shown with --hypothesis-show-statistics).
    event(f"A answered {answer_a.status_code} {answer_a.text[:60]}")
    assert 200 <= answer_a.status_code < 500, answer_a.text
    assert answer_b.status_code == 200, answer_b.text
    worker.drain()
    with db.read(runtime.engine) as conn:
        entry = inbox.get(conn, b.id, "stage", valid["id"])
    assert entry is not None and entry.state == "applied"
    if answer_a.status_code == 200:
        # What A stored reads back through the API (whether the worker applied it or not).
        base = f"/api/v1/merchants/{a.id}/stage"
        event_id = quote(json.loads(body)["id"], safe="")
        for path in (f"{base}/events", f"{base}/events/{event_id}", *READS):
            got = client.get(path.format(base=base), headers=a.auth)
            # The account may not be synced yet (404); a list or the event is always there.
            expected = (200, 404) if path.endswith("/account") else (200,)
            assert got.status_code in expected, (path, got.text)
