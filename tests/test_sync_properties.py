"""Order does not matter: any permutation of a lifecycle's events, with any repeats, delivered
through the signed webhook endpoint and applied by the worker at random moments, ends in the
state the events leave in Stripe's order. Runs on SQLite and PostgreSQL (``--db``).

Each example uses a fresh merchant, so examples need no database reset between them.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchant_backend.runtime import Runtime
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.webhook_support import (
    connected_merchant,
    expected_history,
    expected_projection,
    history,
    inbox_rows,
    post,
    projection,
    visible,
)

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Built once: every example replays the same events (event ids are per merchant).
LIFECYCLES = {name: sf.lifecycle(name) for name in sorted(sf.LIFECYCLES)}


@st.composite
def deliveries(
    draw: st.DrawFn, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[int, bool]]]:
    """Which events Stripe sends (any non-empty subset: some may still be on their way, so
    intermediate states count too), and a delivery plan for them: a permutation with
    repeats, as (index into the subset, drain the worker after it?)."""
    chosen = draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)).filter(any))
    subset = [e for e, keep in zip(events, chosen, strict=True) if keep]
    plan = list(draw(st.permutations(range(len(subset)))))
    repeats = draw(st.lists(st.sampled_from(range(len(subset))), max_size=len(subset)))
    for idx in repeats:
        plan.insert(draw(st.integers(0, len(plan))), idx)
    drains = draw(st.lists(st.booleans(), min_size=len(plan), max_size=len(plan)))
    return subset, list(zip(plan, drains, strict=True))


def deliver(
    client: TestClient, worker: Worker, merchant_id: str, events: list[dict[str, Any]], plan: Any
) -> None:
    seen: set[str] = set()
    for idx, drain in plan:
        evt = events[idx]
        r = post(client, merchant_id, evt)
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is (evt["id"] in seen)
        seen.add(evt["id"])
        if drain:
            worker.drain()
    worker.drain()


def check_in_order_state(runtime: Runtime, merchant_id: str, events: list[dict[str, Any]]) -> None:
    """``events`` in Stripe's order; the stored state must be what they leave in that order."""
    engine = runtime.engine
    assert visible(projection(engine, merchant_id)) == expected_projection(events)
    assert history(engine, merchant_id) == expected_history(events)
    rows = inbox_rows(engine, merchant_id)
    assert {r.state for r in rows} == {"applied"}
    assert len(rows) == len(events)


def test_in_order_delivery_gives_the_in_order_state(
    client: TestClient, runtime: Runtime, worker: Worker
) -> None:
    """The reference the property compares with: one by one, in Stripe's order, each applied
    before the next arrives, ends where each object's last event leaves it."""
    m = connected_merchant(runtime)
    events = [evt for lc in LIFECYCLES.values() for evt in lc.events]
    deliver(client, worker, m.id, events, [(i, True) for i in range(len(events))])
    check_in_order_state(runtime, m.id, events)


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
@PROPERTY
@given(data=st.data())
def test_any_order_with_repeats_ends_in_the_in_order_state(
    client: TestClient, runtime: Runtime, worker: Worker, name: str, data: st.DataObject
) -> None:
    subset, plan = data.draw(deliveries(LIFECYCLES[name].events), label="delivery")
    m = connected_merchant(runtime)
    deliver(client, worker, m.id, subset, plan)
    check_in_order_state(runtime, m.id, subset)


# All lifecycles of one merchant interleaved: objects that share a customer or a payment do
# not disturb each other.
MIXED = [
    sf.pi_fails_then_succeeds(1_760_000_000, customer="cus_mixed"),
    sf.customer_updates(1_760_000_000, customer="cus_mixed"),
    sf.card_expiry_updates(1_760_000_100, customer="cus_mixed"),
    sf.dispute_lost(1_760_100_000),
    sf.pi_canceled(1_760_000_000, customer="cus_mixed"),
    sf.account_requirements(1_760_000_000),
]
MIXED_EVENTS = [evt for lc in MIXED for evt in lc.events]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_interleaved_lifecycles_end_in_the_in_order_state(
    client: TestClient, runtime: Runtime, worker: Worker, data: st.DataObject
) -> None:
    subset, plan = data.draw(deliveries(MIXED_EVENTS), label="delivery")
    m = connected_merchant(runtime)
    deliver(client, worker, m.id, subset, plan)
    check_in_order_state(runtime, m.id, subset)
