"""The Stripe side of reconcile: list ``GET /v1/events`` page by page and plan what to insert.

A run covers a fixed window ``created[gte]=since``, ``created[lte]=until`` (until = when the
run started) and pages with ``starting_after``, as Stripe documents; it does not depend on the
order Stripe lists events in. Each page's new events and the run's progress (the cursor) are
committed in one transaction, so a run that crashes resumes at the page after the last commit
and nothing is inserted twice (the inbox is unique per event id anyway). Events of the 15
handled types are inserted with ``source="reconcile"``; the worker applies them like webhooks.

The next run starts where the last one ended (minus an overlap, because an event can become
listable a little after its ``created`` second), or at ``--since``; the first one goes back as
far as Stripe keeps events (30 days).

``types[]`` is not sent: the filtering is done here, which costs a little bandwidth on real
Stripe but works with any server that implements the documented basic list parameters.

The run's loop (its transactions, the lease) is the use case ``services.reconcile``; its state
and lease are kept by ``store.reconcile_state``; the scheduler of ``serve`` is in
``services.background``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import orjson

from merchant_backend import logs
from merchant_backend.errors import EventRejected
from merchant_backend.store.inbox import NewEvent
from merchant_backend.store.reconcile_state import Run, State
from merchant_backend.stripe.client import StripeConnection
from merchant_backend.stripe.webhook_event import check_belongs, parse_event
from merchant_backend.vocabulary import HANDLED_SET


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.reconcile")


PAGE_SIZE = 100
OVERLAP_SECONDS = 300
RETENTION_SECONDS = 30 * 86400


def default_holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def plan_run(state: State, since: int | None, at: float) -> Run:
    """Resume the unfinished run, or start the next window. Pure."""
    held = state.run
    if held is not None and (since is None or since == held.since):
        held.resumed = True
        return held
    if since is None:
        since = (
            state.synced_until - OVERLAP_SECONDS
            if state.synced_until is not None
            else int(at) - RETENTION_SECONDS
        )
    return Run(since=since, until=int(at), started_at=at)


@dataclass(frozen=True)
class Sorted:
    keep: list[NewEvent]
    skipped: int
    rejected: int


def sort_page(events: list[dict[str, Any]], merchant_id: str, env: str, account_id: str) -> Sorted:
    """The page's events of the 15 types that belong to this data set, as inbox rows. Pure."""
    keep: list[NewEvent] = []
    skipped = rejected = 0
    for doc in events:
        if doc.get("type") not in HANDLED_SET:
            skipped += 1
            continue
        try:
            # Integers past 64 bits do not serialise: not an event Stripe sends either.
            payload = orjson.dumps(doc)
            event = parse_event(payload)
            # Listed with this environment's key, so a mismatch means a broken server.
            check_belongs(event, env, account_id)
        except (EventRejected, orjson.JSONEncodeError) as exc:
            reason = exc.reason if isinstance(exc, EventRejected) else "not_an_event"
            log().warning(
                "reconcile skipped event", event_id=str(doc.get("id"))[:255], reason=reason
            )
            rejected += 1
            continue
        keep.append(NewEvent.of(event, merchant_id, env, payload, "reconcile"))
    return Sorted(keep, skipped, rejected)


def fetch_page(sc: StripeConnection, run: Run) -> tuple[list[dict[str, Any]], bool]:
    """The next page of the run's window (after its cursor) and whether there are more."""
    params: dict[str, Any] = {
        "limit": PAGE_SIZE,
        "created": {"gte": run.since, "lte": run.until},
    }
    if run.cursor:
        params["starting_after"] = run.cursor

    def fetch() -> tuple[list[dict[str, Any]], bool]:
        # A raw request: turning a page into SDK objects costs ~90% of the time of a run, and
        # we keep the events exactly as Stripe sent them anyway.
        response = sc.client.raw_request("get", "/v1/events", **params)
        page = json.loads(response.body)
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise ValueError("Stripe's event list has no data")
        return [d for d in data if isinstance(d, dict)], bool(page.get("has_more"))

    return sc.call("events.list", "list events", fetch)


@dataclass(frozen=True)
class ReconcileSummary:
    """What a run did (printed by the CLI, stored as the data set's last summary)."""

    merchant_id: str
    env: str
    since: int
    until: int
    finished: bool
    resumed: bool
    pages: int
    fetched: int
    new: int
    already_known: int
    skipped_types: int
    rejected: int

    @classmethod
    def of(cls, merchant_id: str, env: str, run: Run, *, finished: bool) -> ReconcileSummary:
        return cls(
            merchant_id=merchant_id,
            env=env,
            since=run.since,
            until=run.until,
            finished=finished,
            resumed=run.resumed,
            pages=run.pages,
            fetched=run.fetched,
            new=run.new,
            already_known=run.known,
            skipped_types=run.skipped,
            rejected=run.rejected,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "env": self.env,
            "since": self.since,
            "until": self.until,
            "finished": self.finished,
            "resumed": self.resumed,
            "pages": self.pages,
            "fetched": self.fetched,
            "new": self.new,
            "already_known": self.already_known,
            "skipped_types": self.skipped_types,
            "rejected": self.rejected,
        }
