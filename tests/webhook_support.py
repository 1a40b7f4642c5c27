"""Helpers for the webhook, sync and worker tests: post signed events, read stores and metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store.inbox import NewEvent
from merchant_backend.store.schema import (
    events,
    merchants,
    object_events,
    stripe_datasets,
    stripe_objects,
    webhook_rejections,
)
from tests.conftest import SIGNING_SECRET, MerchantCtx, add_data_set, make_merchant
from tests.foundation_helpers import subprocess_env
from tests.stripe_factory import body, signed

# What a webhook may change; webhook_rejections is left out (rejections are meant to go there).
STORE_TABLES = (merchants, stripe_datasets, events, stripe_objects, object_events)


def url(merchant_id: str, env: str = "stage") -> str:
    return f"/webhooks/stripe/{merchant_id}/{env}"


def post(
    client: TestClient,
    merchant_id: str,
    evt: dict[str, Any] | bytes,
    *,
    env: str = "stage",
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> Any:
    """POST an event signed like Stripe signs it (``t`` = now unless given)."""
    raw, header = signed(evt, secret, timestamp)
    return client.post(url(merchant_id, env), content=raw, headers={"Stripe-Signature": header})


def post_ok(client: TestClient, merchant_id: str, evt: dict[str, Any], **kw: Any) -> Any:
    r = post(client, merchant_id, evt, **kw)
    assert r.status_code == 200, r.text
    return r


def connected_merchant(runtime: Runtime, name: str = "Shop") -> MerchantCtx:
    """A fresh merchant with a stage and a live data set (cheap: used per Hypothesis example)."""
    m = make_merchant(runtime, name)
    add_data_set(runtime, m.id, "stage")
    add_data_set(runtime, m.id, "live")
    return m


def store_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a webhook could change, in a stable order, to compare before and after."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in STORE_TABLES:
            out[table.name] = sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
    return out


def rejections(engine: Engine, merchant_id: str) -> dict[tuple[str, str], int]:
    """(env, reason) -> count in the webhook_rejections table."""
    out: dict[tuple[str, str], int] = {}
    with engine.connect() as conn:
        for r in conn.execute(
            select(webhook_rejections).where(webhook_rejections.c.merchant_id == merchant_id)
        ):
            out[(r.env, r.reason)] = out.get((r.env, r.reason), 0) + r.count
    return out


def inbox_rows(engine: Engine, merchant_id: str, env: str = "stage") -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(events)
                .where(events.c.merchant_id == merchant_id, events.c.env == env)
                .order_by(events.c.id)
            )
        )


def projection(engine: Engine, merchant_id: str, env: str = "stage") -> dict[str, Any]:
    """Per Stripe id: what a reader can see of the object (sync time left out)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(stripe_objects).where(
                stripe_objects.c.merchant_id == merchant_id, stripe_objects.c.env == env
            )
        )
        return {
            r.stripe_id: {
                "object_type": r.object_type,
                "object": json.loads(r.data),
                "status": r.status,
                "customer_id": r.customer_id,
                "last_event_id": r.last_event_id,
                "last_event_created": r.last_event_created,
            }
            for r in rows
        }


def history(engine: Engine, merchant_id: str, env: str = "stage") -> dict[str, list[str]]:
    """Per Stripe id, the ids of the events recorded in its history (sorted)."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for r in conn.execute(
            select(object_events.c.stripe_id, object_events.c.event_id).where(
                object_events.c.merchant_id == merchant_id, object_events.c.env == env
            )
        ):
            out.setdefault(r.stripe_id, []).append(r.event_id)
    return {k: sorted(v) for k, v in out.items()}


def expected_projection(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The in-order state, from the events alone (given in Stripe's order): each object as
    its last event left it."""
    out: dict[str, Any] = {}
    for evt in events:
        data = evt["data"]["object"]
        out[data["id"]] = {
            "object": data,
            "status": data.get("status"),
            "last_event_id": evt["id"],
            "last_event_created": evt["created"],
        }
    return out


def visible(proj: dict[str, Any]) -> dict[str, Any]:
    """The fields ``expected_projection`` predicts."""
    keys = ("object", "status", "last_event_id", "last_event_created")
    return {sid: {k: v[k] for k in keys} for sid, v in proj.items()}


def expected_history(events: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for evt in events:
        out.setdefault(evt["data"]["object"]["id"], []).append(evt["id"])
    return {k: sorted(v) for k, v in out.items()}


def metric(client: TestClient, name: str, **labels: str) -> float:
    """A sample's value from GET /metrics (0 if not there yet)."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def flush_rejections(client: TestClient) -> None:
    """Write the rejection counts the app noted (normally every 2 s or with the next batch)."""
    client.portal.call(client.app.state.inbox_writer.flush_rejections)  # type: ignore[attr-defined, union-attr]


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str | None = None,
) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise AssertionError(f"timed out waiting for {what}")
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# ---- real processes (crash tests) ---------------------------------------------------------

CLI = Path(sys.executable).parent / "merchant-backend"


def process_env(settings: Settings, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``merchant-backend`` process on the test database and key."""
    assert settings.master_key is not None
    return subprocess_env(
        {
            "MERCHANT_BACKEND_DATABASE_URL": database_url,
            "MERCHANT_BACKEND_MASTER_KEY": settings.master_key.get_secret_value(),
            "MERCHANT_BACKEND_LOG_LEVEL": "WARNING",
            **extra,
        }
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(CLI), *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this test started (gracefully, then for sure)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def inbox_item(
    m: MerchantCtx, evt: dict[str, Any], object_type: str | None = "payment_intent"
) -> NewEvent:
    """A stage webhook event of a handled type as the inbox stores it, without the HTTP route."""
    return NewEvent(
        merchant_id=m.id,
        env="stage",
        event_id=evt["id"],
        type=evt["type"],
        created=evt["created"],
        object_type=object_type,
        object_id=evt["data"]["object"]["id"],
        payload=body(evt),
        source="webhook",
        handled=True,
    )


def make_dead(engine: Engine, event_id: str) -> None:
    """The event gave up after its tries (say the database was down), as the worker leaves it."""
    from sqlalchemy import update

    from merchant_backend.store import db
    from merchant_backend.store.schema import events

    with db.write(engine) as conn:
        conn.execute(
            update(events)
            .where(events.c.event_id == event_id)
            .values(state="dead", attempts=8, last_error="OperationalError: database is locked")
        )
