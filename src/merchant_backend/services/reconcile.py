"""Recover events Stripe never delivered: one reconcile run of a data set, page by page.

The loop of a run: take the data set's lease (``store.reconcile_state``), plan the window
(``stripe.reconcile.plan_run``), then for each page Stripe lists (``stripe.reconcile.fetch_page``)
insert its missing events into the inbox and save the cursor in one transaction, so a run that
crashes resumes at the page after the last commit and nothing is inserted twice. The lease is
renewed with every page and released at the end, on success or failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from merchant_backend import clock, logs
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox
from merchant_backend.store.reconcile_state import (
    LEASE_SECONDS,
    State,
    check_still_ours,
    release_lease,
    save_state,
    take_lease,
)
from merchant_backend.store.reconcile_state import Run as Run
from merchant_backend.stripe.client import StripeConnection, connect
from merchant_backend.stripe.reconcile import (
    ReconcileSummary,
    default_holder,
    fetch_page,
    plan_run,
    sort_page,
)


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.reconcile")


Progress = Callable[[Run], None]


def reconcile(
    rt: Runtime,
    merchant_id: str,
    env: str,
    *,
    since: int | None = None,
    on_page: Progress | None = None,
    holder: str | None = None,
) -> ReconcileSummary:
    """Fetch the window's events, insert the missing ones; returns the run's summary.

    Raises ``ReconcileRunning`` (a ``Conflict``) when another run of the data set is under way;
    ``holder`` names this one in that message for the other callers (default: pid and host).
    """
    sc = connect(rt, merchant_id, env)
    owner = uuid.uuid4().hex
    who = holder or default_holder()
    with db.write(rt.engine) as conn:
        at = clock.now()
        state = take_lease(conn, merchant_id, env, owner, who, at)
        run = plan_run(state, since, at)
        state.run = run
        save_state(conn, merchant_id, env, state)
    try:
        summary = _run(rt, sc, merchant_id, env, state, run, owner, on_page)
    finally:
        try:
            with db.write(rt.engine) as conn:
                release_lease(conn, merchant_id, env, owner)
        except Exception as exc:  # the run's own error matters more; the lease expires
            log().warning(
                "reconcile lease not released",
                merchant_id=merchant_id,
                env=env,
                error=logs.error_text(exc),
            )
    log().info(
        "reconcile finished", **{k: v for k, v in summary.as_json().items() if k != "finished"}
    )
    return summary


def _run(
    rt: Runtime,
    sc: StripeConnection,
    merchant_id: str,
    env: str,
    state: State,
    run: Run,
    owner: str,
    on_page: Progress | None,
) -> ReconcileSummary:
    """The pages of ``run``, with ``state`` (holding our lease) saved after each."""
    if run.resumed:
        log().info("reconcile resumes", merchant_id=merchant_id, env=env, pages=run.pages)
    while True:
        events, has_more = fetch_page(sc, run)
        page = sort_page(events, merchant_id, env, sc.account_id)
        with db.write(rt.engine) as conn:
            check_still_ours(conn, merchant_id, env, owner)
            # One event the database refuses fails alone (counted as rejected, and logged);
            # it must not stop the run at this page for ever.
            new, refused = inbox.insert_isolated(conn, page.keep, clock.now())
            for key, exc in refused.items():
                log().warning(
                    "reconcile could not store event",
                    event_id=key[2],
                    error=logs.error_text(exc),
                )
            run.pages += 1
            run.fetched += len(events)
            run.new += len(new)
            run.known += len(page.keep) - len(new) - len(refused)
            run.skipped += page.skipped
            run.rejected += page.rejected + len(refused)
            created = [e["created"] for e in events if isinstance(e.get("created"), int)]
            if created:
                oldest = min(created)
                run.oldest_seen = (
                    oldest if run.oldest_seen is None else min(oldest, run.oldest_seen)
                )
            if events:
                run.cursor = str(events[-1].get("id"))
            if state.lease is not None:  # always: take_lease put ours there
                state.lease.until = clock.now() + LEASE_SECONDS
            save_state(conn, merchant_id, env, state)
        if new:
            rt.inbox_bell.ring()  # committed: this process's worker takes them now
        if on_page is not None:
            on_page(run)
        if not has_more or not events:
            break
    summary = ReconcileSummary.of(merchant_id, env, run, finished=True)
    with db.write(rt.engine) as conn:
        check_still_ours(conn, merchant_id, env, owner)
        state.synced_until = max(state.synced_until or 0, run.until)
        state.run = None
        state.last_summary = summary.as_json()
        state.lease = None
        save_state(conn, merchant_id, env, state)
    return summary
