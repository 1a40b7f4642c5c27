"""Stripe events for tests, built from Stripe's published objects (shared/stripe-fixtures).

Only fields that the flow changes are overridden; everything else stays as Stripe publishes
it. Events are signed exactly as Stripe signs them.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson

from merchant_backend.stripe.signature import sign

# The project's checkout sits beside shared/ (also in CI, which copies shared/ next to its clone).
FIXTURES = Path(
    os.environ.get(
        "MERCHANT_BACKEND_STRIPE_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "stripe-fixtures" / "objects",
    )
)

_counter = itertools.count(1)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def obj(name: str, **overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(fixture(name))
    data.update(overrides)
    return data


def event(
    type_: str,
    data_object: dict[str, Any],
    *,
    created: int | None = None,
    livemode: bool = False,
    event_id: str | None = None,
    account: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Stripe event envelope in the shape of fixtures' event.json."""
    env = copy.deepcopy(fixture("event"))
    env["id"] = event_id or f"evt_test{next(_counter):012d}{int(time.time() * 1000) % 100000}"
    env["type"] = type_
    env["created"] = created if created is not None else int(time.time())
    env["livemode"] = livemode
    env["api_version"] = "2026-07-29.dahlia"
    env["data"] = {"object": copy.deepcopy(data_object)}
    if previous_attributes is not None:
        env["data"]["previous_attributes"] = previous_attributes
    if account is not None:
        env["account"] = account
    if "livemode" in env["data"]["object"]:
        env["data"]["object"]["livemode"] = livemode
    return env


def body(evt: dict[str, Any]) -> bytes:
    return orjson.dumps(evt)


def signed(
    evt: dict[str, Any] | bytes, secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    raw = evt if isinstance(evt, bytes) else body(evt)
    return raw, sign(raw, secret, int(time.time()) if timestamp is None else timestamp)
