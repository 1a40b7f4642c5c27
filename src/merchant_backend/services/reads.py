"""What the API and the web pages show: the synced objects, the inbox, the overview's figures.

Each function is one read transaction; an unknown ``starting_after`` raises ``UnknownCursor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merchant_backend.errors import UnknownCursor
from merchant_backend.runtime import Runtime
from merchant_backend.store import (
    datasets,
    db,
    inbox,
    objects,
    reconcile_state,
    rejections,
    stats,
    timeline,
)
from merchant_backend.store.datasets import StoredDataSet
from merchant_backend.store.inbox import InboxEntry
from merchant_backend.store.objects import StoredObject as StoredObject
from merchant_backend.store.reconcile_state import State
from merchant_backend.store.stats import DAY as DAY
from merchant_backend.store.stats import LastEvent


@dataclass(frozen=True)
class ObjectDetail:
    """An object with its timeline: the events applied to it (oldest first) and those that
    are not applied (yet)."""

    item: StoredObject
    applied: list[dict[str, Any]]
    waiting: list[InboxEntry]


def list_objects(
    rt: Runtime,
    merchant_id: str,
    env: str,
    object_type: str,
    *,
    limit: int,
    starting_after: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
) -> tuple[list[StoredObject], bool]:
    """Newest first; the page and whether there are more."""
    with db.read(rt.engine) as conn:
        try:
            return objects.list_page(
                conn,
                merchant_id,
                env,
                object_type,
                limit=limit,
                starting_after=starting_after,
                status=status,
                customer_id=customer_id,
            )
        except LookupError:
            raise UnknownCursor(starting_after or "") from None


def _detail(
    conn: Any, merchant_id: str, env: str, item: StoredObject, *, waiting: bool = True
) -> ObjectDetail:
    return ObjectDetail(
        item=item,
        applied=objects.history(conn, merchant_id, env, item.stripe_id),
        waiting=(
            timeline.unapplied_for_object(conn, merchant_id, env, item.stripe_id) if waiting else []
        ),
    )


def object_detail(
    rt: Runtime,
    merchant_id: str,
    env: str,
    object_type: str,
    stripe_id: str,
    *,
    waiting: bool = True,
) -> ObjectDetail | None:
    """The object and its timeline; ``waiting=False`` leaves out the unapplied events."""
    with db.read(rt.engine) as conn:
        item = objects.get(conn, merchant_id, env, object_type, stripe_id)
        return None if item is None else _detail(conn, merchant_id, env, item, waiting=waiting)


def has_object(rt: Runtime, merchant_id: str, env: str, object_type: str, stripe_id: str) -> bool:
    """Is the object stored (so a page may link to it)?"""
    with db.read(rt.engine) as conn:
        return objects.get(conn, merchant_id, env, object_type, stripe_id) is not None


@dataclass(frozen=True)
class AccountView:
    """The data set's account (not whatever account object came last); either may be None."""

    data_set: StoredDataSet | None
    account: ObjectDetail | None


def account_of(rt: Runtime, merchant_id: str, env: str) -> AccountView:
    with db.read(rt.engine) as conn:
        stored = datasets.get(conn, merchant_id, env)
        if stored is None:
            return AccountView(None, None)
        item = objects.get(conn, merchant_id, env, "account", stored.account_id)
        detail = None if item is None else _detail(conn, merchant_id, env, item, waiting=False)
        return AccountView(stored, detail)


@dataclass(frozen=True)
class CustomerView:
    detail: ObjectDetail
    payments: list[StoredObject]
    more_payments: bool


def customer_of(
    rt: Runtime, merchant_id: str, env: str, customer_id: str, *, payments: int = 10
) -> CustomerView | None:
    """A customer with its newest payments."""
    with db.read(rt.engine) as conn:
        item = objects.get(conn, merchant_id, env, "customer", customer_id)
        if item is None:
            return None
        pays, more = objects.list_page(
            conn, merchant_id, env, "payment_intent", limit=payments, customer_id=customer_id
        )
        return CustomerView(_detail(conn, merchant_id, env, item), pays, more)


def list_events(
    rt: Runtime,
    merchant_id: str,
    env: str,
    *,
    limit: int,
    starting_after: str | None = None,
    type_: str | None = None,
    state: str | None = None,
    object_id: str | None = None,
) -> tuple[list[InboxEntry], bool]:
    """The inbox, newest first by Stripe's ``created``, then by arrival."""
    with db.read(rt.engine) as conn:
        try:
            return inbox.list_page(
                conn,
                merchant_id,
                env,
                limit=limit,
                starting_after=starting_after,
                type_=type_,
                state=state,
                object_id=object_id,
            )
        except LookupError:
            raise UnknownCursor(starting_after or "") from None


def get_event(rt: Runtime, merchant_id: str, env: str, event_id: str) -> InboxEntry | None:
    """The inbox entry with its payload."""
    with db.read(rt.engine) as conn:
        return inbox.get(conn, merchant_id, env, event_id)


@dataclass(frozen=True)
class Overview:
    data_set: StoredDataSet | None
    counts: dict[str, int]
    rejected: dict[str, int]
    last: LastEvent | None
    events_per_day: dict[int, int]
    volume_per_day: dict[str, dict[int, int]]


def overview(rt: Runtime, merchant_id: str, env: str, *, at: float, since: int) -> Overview:
    """The overview page's figures: the inbox by state, the last day's rejections, the newest
    event, and per-day events and succeeded payment volume from ``since`` on."""
    with db.read(rt.engine) as conn:
        return Overview(
            data_set=datasets.get(conn, merchant_id, env),
            counts=inbox.counts_by_state(conn, merchant_id, env),
            rejected=rejections.count_since(conn, merchant_id, env, at - 86400),
            last=stats.last_event(conn, merchant_id, env),
            events_per_day=stats.events_per_day(conn, merchant_id, env, since),
            volume_per_day=stats.payment_volume_per_day(conn, merchant_id, env, since),
        )


def reconcile_progress(rt: Runtime, merchant_id: str, env: str) -> State:
    """Reconcile's stored state: the run under way (if any) and the last run's summary."""
    with db.read(rt.engine) as conn:
        return reconcile_state.load_state(conn, merchant_id, env)


def rejections_since(rt: Runtime, merchant_id: str, env: str, since: float) -> dict[str, int]:
    """Rejected webhook deliveries by reason since ``since``."""
    with db.read(rt.engine) as conn:
        return rejections.count_since(conn, merchant_id, env, since)
