"""The event inbox: ``reconcile`` (fetch what Stripe did not deliver), ``events replay`` and
``events prune``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from merchant_backend import clock, logs
from merchant_backend.cli.common import EnvOpt, MerchantOpt, env_of, require_merchant, runtime
from merchant_backend.cli.errors import BadInput, guarded
from merchant_backend.cli.output import out
from merchant_backend.errors import NotFound
from merchant_backend.services import events
from merchant_backend.services import reconcile as reconciling
from merchant_backend.services.reconcile import Run
from merchant_backend.stripe.reconcile import default_holder
from merchant_backend.validation import parse_ascii_int, parse_duration

events_app = typer.Typer(help="The event inbox.", no_args_is_help=True)


def parse_since(text: str) -> int:
    """``--since``: unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = text.strip()
    seconds = parse_ascii_int(text)
    if seconds is not None:
        return seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since must be unix seconds or an ISO date such as 2026-01-31 or "
            f"2026-01-31T12:00:00Z, not {text[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


@guarded
def reconcile(
    merchant: MerchantOpt,
    env: EnvOpt,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="start here (unix seconds or ISO date) instead of the last run's end"
        ),
    ] = None,
) -> None:
    """Fetch events Stripe did not deliver (GET /v1/events) into the inbox; resumable."""
    e = env_of(env)
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise BadInput(str(exc), "since") from None
    with runtime() as rt:
        require_merchant(rt, merchant)
        # Named in the "already running" message another caller gets while this one runs.
        holder = f"merchant-backend reconcile ({default_holder()})"
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (
                TextColumn("reconcile {task.fields[where]}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                # Stripe does not say how many events there are: a pulsing bar, and how far
                # back in time the listing has come.
                task = bar.add_task("", total=None, where=f"{merchant}/{e}", counts="")

                def show(run: Run) -> None:
                    counts = f"fetched {run.fetched} · new {run.new} · known {run.known}"
                    if run.oldest_seen is not None:
                        back = datetime.fromtimestamp(run.oldest_seen, UTC)
                        counts += f" · back to {back:%Y-%m-%d %H:%M} UTC"
                    bar.update(task, counts=counts)

                summary = reconciling.reconcile(
                    rt, merchant, e, since=start, on_page=show, holder=holder
                )
        else:
            summary = reconciling.reconcile(rt, merchant, e, since=start, holder=holder)
    out(summary.as_json())


@events_app.command("replay")
@guarded
def events_replay(
    merchant: MerchantOpt,
    env: EnvOpt,
    event_id: Annotated[str, typer.Argument(help="evt_…")],
) -> None:
    """Put an event back in line for the worker (any state, also dead)."""
    e = env_of(env)
    with runtime() as rt:
        require_merchant(rt, merchant)
        entry = events.replay_event(rt, merchant, e, event_id)
        if entry is None:
            raise NotFound(f"no event {event_id} in {e} for {merchant}")
        out(entry.as_json())


@events_app.command("prune")
@guarded
def events_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="age of the events to prune, e.g. 90d or 36h "
            "(default: MERCHANT_BACKEND_EVENT_RETENTION_DAYS)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count what would be removed")
    ] = False,
) -> None:
    """Remove the raw bodies of applied and ignored events older than the retention period.

    Their rows stay (a late duplicate from Stripe is still recognised), and so do pending,
    failed and dead events, the projections and each object's history. Small batches: the
    service keeps taking webhooks meanwhile.
    """
    from merchant_backend.services import retention

    with runtime() as rt:
        if older_than is not None:
            try:
                age = parse_duration(older_than)
            except ValueError as exc:
                raise BadInput(str(exc), "older_than") from None
        elif rt.settings.event_retention_days > 0:
            age = rt.settings.event_retention_days * retention.DAY
        else:
            raise BadInput(
                "retention is off (MERCHANT_BACKEND_EVENT_RETENTION_DAYS=0): "
                "pass --older-than, e.g. --older-than 90d",
                "older_than",
            )
        before = clock.now() - age
        if dry_run:
            result = retention.prune_events(rt, before, dry_run=True)
        elif not sys.stderr.isatty():
            # Without a terminal (cron, a container): a log line every 20 batches.
            progress = logs.get("merchant_backend.retention")
            batches = [0]

            def note(r: retention.PruneResult) -> None:
                batches[0] += 1
                if batches[0] % 20 == 0:
                    progress.info(
                        "prune progress",
                        events=r.events,
                        bytes=r.bytes,
                        outbound_messages=r.outbound_messages,
                    )

            result = retention.prune_events(rt, before, on_batch=note)
        else:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            bodies, _bytes, messages = retention.count_prunable(rt, before)
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                # Events first, then outbound messages (store/retention.py prunes in that order).
                event_task = bar.add_task("event bodies", total=bodies)
                message_task = bar.add_task("outbound messages", total=messages)

                def advance(r: retention.PruneResult) -> None:
                    bar.update(event_task, completed=r.events)
                    bar.update(message_task, completed=r.outbound_messages)

                result = retention.prune_events(rt, before, on_batch=advance)
    out(result.as_json())
