"""Managing destinations, and reading what was sent: one function per user action.

``owner`` is the merchant id, or None for the operator's installation-wide destinations. Each
function opens its own transactions. A destination of another owner looks exactly like a
missing one. The URL is checked (``ssrf.check``) whenever it is set; the secret is generated
here and returned only by ``create_destination`` and ``rotate_secret`` (their web forms'
``_once`` variants keep it, encrypted, for the session to see once: ``services.once``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from merchant_backend import clock
from merchant_backend.errors import FieldError, InvalidInput, NotFound
from merchant_backend.i18n import N_
from merchant_backend.outbound import signing, ssrf
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.services import once
from merchant_backend.store import db, outbox, web_reveals
from merchant_backend.store import destinations as destination_store
from merchant_backend.store.destinations import OBJECT_TYPES as OBJECT_TYPES
from merchant_backend.store.destinations import Destination
from merchant_backend.store.outbox import DELIVERY_STATES as DELIVERY_STATES

MAX_WAIT = 30.0
# Another process's commits are seen by polling this often while a long poll waits.
FEED_POLL = 0.25
MAX_LIMIT = 1000
# Destinations per owner (a merchant, or the installation) and environment: every change is
# sent to each, so without a bound one merchant's list could fill the dispatcher for everyone.
# Stripe allows an account 16 webhook endpoints; so do we.
MAX_DESTINATIONS = 16


class DestinationNotFound(NotFound):
    """No such destination for this owner and environment (or no such message)."""


# Why a field is refused, beyond the URL's own reasons (``ssrf.REASONS``): code → English.
REASONS = {
    "url_missing": N_("a destination needs a URL"),
    "description_too_long": N_("at most 500 characters"),
    "object_types_unknown": N_("unknown: %(unknown)s (known: %(known)s)"),
    "object_types_none": N_("name at least one object type (or leave it out for all)"),
    "replay_what": N_("give a message id or a time since which to replay failed ones"),
    "too_many": N_("at most %(max)s destinations per environment: remove one first"),
}


@dataclass(frozen=True)
class Refusal:
    """Why one field was refused: a code (``REASONS`` or ``ssrf.REASONS``) and its values, so a
    web page can say it in its reader's language; the API and the CLI show the English."""

    reason: str
    values: dict[str, str]


class InvalidDestinationInput(InvalidInput):
    """Input that breaks a rule: every field at once (``by_field`` for forms, in English;
    ``reasons`` the same refusals as codes, for a page to translate)."""

    def __init__(self, errors: dict[str, str], reasons: dict[str, Refusal] | None = None) -> None:
        super().__init__([FieldError(k, v) for k, v in errors.items()])
        self.by_field = errors
        self.reasons = reasons or {}

    @classmethod
    def refusing(cls, reasons: dict[str, Refusal]) -> InvalidDestinationInput:
        english = {}
        for field_name, r in reasons.items():
            template = REASONS[r.reason] if r.reason in REASONS else ssrf.REASONS[r.reason]
            english[field_name] = template % r.values if r.values else template
        return cls(english, reasons)


@dataclass(frozen=True)
class DestinationInput:
    url: str | None = None
    description: str | None = None
    object_types: Sequence[str] | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class DestinationView:
    destination: Destination
    counts: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        out = self.destination.as_json()
        out["deliveries"] = self.counts
        return out


@dataclass(frozen=True)
class WithSecret:
    """A destination and its signing secret: shown this once."""

    view: DestinationView
    secret: str

    def as_json(self) -> dict[str, Any]:
        return {**self.view.as_json(), "secret": self.secret}


def _check(rt: Runtime, data: DestinationInput, env: str, *, creating: bool) -> dict[str, Any]:
    """The validated values to store, or InvalidDestinationInput naming every bad field."""
    errors: dict[str, Refusal] = {}
    values: dict[str, Any] = {}
    if data.url is not None or creating:
        if not data.url:
            errors["url"] = Refusal("url_missing", {})
        else:
            try:
                ssrf.check(data.url, env, allow_private=rt.settings.outbound_allow_private)
                values["url"] = data.url
            except ssrf.UnsafeDestination as exc:
                errors["url"] = Refusal(exc.reason, exc.values)
    if data.description is not None:
        if len(data.description) > 500:
            errors["description"] = Refusal("description_too_long", {})
        else:
            values["description"] = data.description
    elif creating:
        values["description"] = ""
    if data.object_types is not None:
        unknown = [t for t in data.object_types if t not in OBJECT_TYPES]
        if unknown:
            errors["object_types"] = Refusal(
                "object_types_unknown",
                {"unknown": ", ".join(unknown), "known": ", ".join(OBJECT_TYPES)},
            )
        elif not data.object_types:
            errors["object_types"] = Refusal("object_types_none", {})
        else:
            values["object_types"] = tuple(t for t in OBJECT_TYPES if t in data.object_types)
    elif creating:
        values["object_types"] = OBJECT_TYPES
    if data.enabled is not None:
        values["enabled"] = data.enabled
    if errors:
        raise InvalidDestinationInput.refusing(errors)
    return values


def _view(conn: Any, dest: Destination) -> DestinationView:
    return DestinationView(dest, outbox.counts(conn, dest.id))


def _get(conn: Any, owner: str | None, env: str, destination_id: str) -> Destination:
    dest = destination_store.get(conn, owner, env, destination_id)
    if dest is None:
        raise DestinationNotFound(f"no destination {destination_id} in {env}")
    return dest


def list_destinations(rt: Runtime, owner: str | None, env: str) -> list[DestinationView]:
    with db.read(rt.engine) as conn:
        return [_view(conn, d) for d in destination_store.list_owned(conn, owner, env)]


def get_destination(
    rt: Runtime, owner: str | None, env: str, destination_id: str
) -> DestinationView:
    with db.read(rt.engine) as conn:
        return _view(conn, _get(conn, owner, env, destination_id))


def create_destination(
    rt: Runtime, owner: str | None, env: str, data: DestinationInput
) -> WithSecret:
    values = _check(rt, data, env, creating=True)
    secret = signing.new_secret()
    with db.write(rt.engine) as conn:
        return WithSecret(_view(conn, _insert(rt, conn, owner, env, values, secret)), secret)


def _insert(
    rt: Runtime, conn: Any, owner: str | None, env: str, values: dict[str, Any], secret: str
) -> Destination:
    # In the inserting transaction. Two adds at once on PostgreSQL may both see 15: the bound
    # is then 17, still a bound.
    if destination_store.count_owned(conn, owner, env) >= MAX_DESTINATIONS:
        too_many = Refusal("too_many", {"max": str(MAX_DESTINATIONS)})
        raise InvalidDestinationInput.refusing({"url": too_many})
    return destination_store.create(
        conn,
        rt.keys.get(),
        merchant_id=owner,
        env=env,
        url=values["url"],
        description=values["description"],
        object_types=values["object_types"],
        secret=secret,
        enabled=values.get("enabled", True),
    )


def create_destination_once(
    rt: Runtime, owner: str | None, env: str, data: DestinationInput, post: once.FormPost
) -> once.Outcome:
    """The web's "Add destination": as ``create_destination``, with the new signing secret kept,
    encrypted, for the session to see once (``once.take_destination_secret``). The same form
    posted again adds no second destination: it answers the first one's id (``repeated``)."""
    values = _check(rt, data, env, creating=True)
    action = f"destination.create/{owner or '*'}/{env}"  # '*': the installation's
    at = clock.now()
    with db.write(rt.engine) as conn:
        first = once.earlier(conn, post, action, at)
        if first is not None:
            return first
        secret = signing.new_secret()
        dest = _insert(rt, conn, owner, env, values, secret)
        return _made_secret(rt, conn, post, action, dest.id, secret, "created", at)


def _made_secret(
    rt: Runtime,
    conn: Any,
    post: once.FormPost,
    action: str,
    destination_id: str,
    secret: str,
    reason: str,
    at: float,
) -> once.Outcome:
    subject = web_reveals.destination_secret(destination_id)
    return once.made(
        rt, conn, post, action, destination_id, subject=subject, secret=secret, reason=reason, at=at
    )


def update_destination(
    rt: Runtime, owner: str | None, env: str, destination_id: str, data: DestinationInput
) -> DestinationView:
    values = _check(rt, data, env, creating=False)
    with db.write(rt.engine) as conn:
        dest = _get(conn, owner, env, destination_id)
        fresh = destination_store.update_(conn, dest, **values)
        return _view(conn, fresh)


def delete_destination(rt: Runtime, owner: str | None, env: str, destination_id: str) -> None:
    with db.write(rt.engine) as conn:
        destination_store.delete_(conn, _get(conn, owner, env, destination_id))


def rotate_secret(rt: Runtime, owner: str | None, env: str, destination_id: str) -> WithSecret:
    """A new signing secret, in force for every delivery from now on (retries included)."""
    secret = signing.new_secret()
    with db.write(rt.engine) as conn:
        dest = destination_store.set_secret(
            conn, rt.keys.get(), _get(conn, owner, env, destination_id), secret
        )
        return WithSecret(_view(conn, dest), secret)


def rotate_secret_once(
    rt: Runtime, owner: str | None, env: str, destination_id: str, post: once.FormPost
) -> once.Outcome:
    """The web's "New signing secret": as ``rotate_secret``, with the new secret kept for the
    session to see once. The same form posted again rotates nothing: the secret the merchant
    was shown stays the one in force."""
    at = clock.now()
    with db.write(rt.engine) as conn:
        # Looked up first: only a real destination's id (24 characters) names an action.
        dest = _get(conn, owner, env, destination_id)
        action = f"destination.rotate-secret/{dest.id}"
        first = once.earlier(conn, post, action, at)
        if first is not None:
            return first
        secret = signing.new_secret()
        destination_store.set_secret(conn, rt.keys.get(), dest, secret)
        return _made_secret(rt, conn, post, action, dest.id, secret, "rotated", at)


@dataclass(frozen=True)
class TestResult:
    message_id: str
    outcome: str  # delivered, retrying, failed, or queued (a running dispatcher took it)
    status_code: int | None
    error: str | None
    duration_ms: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "outcome": self.outcome,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


def send_test(rt: Runtime, owner: str | None, env: str, destination_id: str) -> TestResult:
    """Write a ``test`` message for this destination and send it now, in this call."""
    at = clock.now()
    with db.write(rt.engine) as conn:
        dest = _get(conn, owner, env, destination_id)
        message_id = outbox.append_test(conn, dest, at)
    dispatcher = Dispatcher(rt)
    try:
        with db.write(rt.engine) as conn:
            item = outbox.claim_message(
                conn,
                dispatcher.dispatcher_id,
                dest.id,
                message_id,
                at=clock.now(),
                lease_seconds=max(
                    rt.settings.outbound_lease_seconds, rt.settings.outbound_timeout + 1
                ),
            )
        if item is None:
            return TestResult(message_id, "queued", None, None, None)
        outcome, attempt = dispatcher.deliver_with_result(item)
    finally:
        dispatcher.stop(wait=False)
    return TestResult(
        message_id,
        outcome,
        attempt.status_code,
        attempt.error,
        round(attempt.duration * 1000, 1),
    )


@dataclass(frozen=True)
class DeliveryLog:
    destination: DestinationView
    deliveries: list[outbox.DeliveryView]
    has_more: bool
    attempts: list[outbox.AttemptView]

    def as_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination.as_json(),
            "data": [d.as_json() for d in self.deliveries],
            "has_more": self.has_more,
            "attempts": [a.as_json() for a in self.attempts],
        }


def delivery_log(
    rt: Runtime,
    owner: str | None,
    env: str,
    destination_id: str,
    *,
    limit: int = 50,
    before: int | None = None,
    state: str | None = None,
) -> DeliveryLog:
    with db.read(rt.engine) as conn:
        dest = _get(conn, owner, env, destination_id)
        items, more = outbox.deliveries_page(
            conn, dest.id, limit=limit, before_id=before, state=state
        )
        log = outbox.attempt_log(conn, dest.id, limit=limit)
        return DeliveryLog(_view(conn, dest), items, more, log)


def replay(
    rt: Runtime,
    owner: str | None,
    env: str,
    destination_id: str,
    *,
    message_id: str | None = None,
    failed_since: float | None = None,
) -> int:
    """Send one message again, or every failed one whose message is from ``failed_since`` on.
    Returns how many deliveries were queued."""
    if (message_id is None) == (failed_since is None):
        raise InvalidDestinationInput.refusing({"message_id": Refusal("replay_what", {})})
    at = clock.now()
    with db.write(rt.engine) as conn:
        dest = _get(conn, owner, env, destination_id)
        if message_id is not None:
            if not outbox.replay_message(conn, dest, message_id, at):
                raise DestinationNotFound(f"no message {message_id} for this destination")
            return 1
        assert failed_since is not None
        return outbox.replay_failed(conn, dest.id, since=failed_since, at=at)


# --- The feed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangesPage:
    data: list[dict[str, Any]]
    has_more: bool
    next_cursor: str

    def as_json(self) -> dict[str, Any]:
        return {"data": self.data, "has_more": self.has_more, "next_cursor": self.next_cursor}


def parse_cursor(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not after.isdigit() or len(after) > 18:
        raise InvalidDestinationInput({"after": "a cursor is the next_cursor of an earlier page"})
    return int(after)


def changes(
    rt: Runtime, merchant_id: str, env: str, *, after: str | None, limit: int, wait: float = 0.0
) -> ChangesPage:
    """Messages after the cursor in sequence order. With ``wait``, an empty answer waits (up to
    30 s) and returns as soon as a change is committed: in this process it is woken at once,
    another process's commit is seen within ``FEED_POLL`` seconds."""
    cursor = parse_cursor(after)
    limit = max(1, min(limit, MAX_LIMIT))
    deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
    while True:
        # Read before the query: a commit between the query and the wait is not missed.
        seen = outbox.COMMITTED.generation
        items, more = _feed_page(rt, merchant_id, env, cursor, limit)
        left = deadline - time.monotonic()
        if items or left <= 0:
            return _page(items, more, cursor)
        outbox.COMMITTED.wait(seen, min(left, FEED_POLL))


async def changes_async(
    rt: Runtime, merchant_id: str, env: str, *, after: str | None, limit: int, wait: float = 0.0
) -> ChangesPage:
    """``changes`` for an event loop: the queries run in a thread, the waiting holds none."""
    cursor = parse_cursor(after)
    limit = max(1, min(limit, MAX_LIMIT))
    deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
    while True:
        seen = outbox.COMMITTED.generation
        items, more = await asyncio.to_thread(_feed_page, rt, merchant_id, env, cursor, limit)
        left = deadline - time.monotonic()
        if items or left <= 0:
            return _page(items, more, cursor)
        await outbox.COMMITTED.wait_async(seen, min(left, FEED_POLL))


def _feed_page(
    rt: Runtime, merchant_id: str, env: str, cursor: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    with db.read(rt.engine) as conn:
        return outbox.feed_page(conn, merchant_id, env, after=cursor, limit=limit)


def _page(items: list[dict[str, Any]], more: bool, cursor: int) -> ChangesPage:
    return ChangesPage(items, more, str(items[-1]["sequence"]) if items else str(cursor))
