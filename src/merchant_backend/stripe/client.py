"""One ``stripe.StripeClient`` per merchant and environment, built from the stored data set.

Every client has the pinned API version, the configured base URL, a timeout, the SDK's network
retries, and an idempotency key on every POST; every call goes through ``StripeConnection.call``
so errors come out as ``UpstreamFailure`` (errors.py) and rate limits are retried.

A request of ours may make several Stripe calls, each with the SDK's retries: without a bound
that is calls × tries × timeout. ``time_budget(seconds)`` gives all the Stripe calls made inside
it one deadline: each try waits at most what is left, no retry starts after it, and a call
asked for after it fails at once with ``stripe_timeout`` (504).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import stripe

from merchant_backend import logs, metrics
from merchant_backend.crypto import mask
from merchant_backend.errors import NotFound, UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.stripe.errors import ErrorContext, problem_from

# The API version every request, and every webhook endpoint we create, is pinned to: the one of
# Stripe's published objects our tests are built from. Change it only together with them.
STRIPE_API_VERSION = "2026-07-29.dahlia"
STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"

# The SDK retries connection errors, 409 and 5xx, but not a plain 429 (only when Stripe sends
# Stripe-Should-Retry), while Stripe asks clients to back off and retry rate limits.
RATE_LIMIT_FIRST_DELAY = 0.5
RATE_LIMIT_MAX_DELAY = 8.0

T = TypeVar("T")


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.stripe")


def new_idempotency_key(prefix: str = "mb") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def post_options(idempotency_key: str | None = None) -> dict[str, Any]:
    """Request options for a POST: an explicit key, so our own retries reuse it."""
    return {"idempotency_key": idempotency_key or new_idempotency_key()}


def api_base(settings: Settings) -> str:
    return (settings.stripe_api_base or STRIPE_DEFAULT_API_BASE).rstrip("/")


def insecure_base_problem(base: str, secret_key: str) -> str | None:
    """Why ``secret_key`` must not be sent to ``base`` (None if it may). Pure.

    A live key moves real money: it goes to Stripe over HTTPS only, whatever
    MERCHANT_BACKEND_STRIPE_API_BASE says (a plain-http base is for test keys and local fakes).
    """
    if _mode(secret_key) == "live" and urlsplit(base).scheme.lower() != "https":
        return (
            f"refusing to send a live key to MERCHANT_BACKEND_STRIPE_API_BASE={base}: live "
            "keys go to Stripe over HTTPS only; set it to an https:// address or unset it"
        )
    return None


# The monotonic time by which the Stripe calls of the current request must be done.
_deadline: ContextVar[float | None] = ContextVar("stripe_deadline", default=None)


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Every Stripe call made inside shares one deadline, ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def within_budget(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` inside ``time_budget(seconds)`` (for handing to a worker thread)."""
    with time_budget(seconds):
        return fn(*args)


def budget_left() -> float | None:
    """Seconds left of the current budget (<= 0 when spent); None outside any budget."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


class BudgetedRequestsClient(stripe.RequestsClient):
    """The SDK's requests client, keeping each try and each retry within the time budget.

    The SDK reads ``self._timeout`` for every try and asks ``_should_retry`` / sleeps
    ``_sleep_time_seconds`` between tries; one client serves many threads at once, so these
    read the calling thread's budget instead of storing anything. (SDK internals, pinned by
    ``stripe<17`` and by tests/test_bulkheads.py against a Stripe that never answers.)
    """

    def __init__(self, timeout: float) -> None:
        self._base_timeout = timeout
        super().__init__(timeout=timeout)

    @property
    def _timeout(self) -> float:
        left = budget_left()
        if left is None:
            return self._base_timeout
        return max(0.01, min(self._base_timeout, left))

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._base_timeout = value

    def _should_retry(self, *args: Any, **kwargs: Any) -> bool:
        left = budget_left()
        if left is not None and left <= HTTP_RETRY_FLOOR:
            return False
        return bool(super()._should_retry(*args, **kwargs))

    def _sleep_time_seconds(self, num_retries: int) -> float:
        delay = float(super()._sleep_time_seconds(num_retries))
        left = budget_left()
        return delay if left is None else max(0.0, min(delay, left - HTTP_RETRY_FLOOR))


# A retry is not started with less than this left: it could not get an answer in time.
HTTP_RETRY_FLOOR = 0.5


def build_client(settings: Settings, secret_key: str) -> stripe.StripeClient:
    problem = insecure_base_problem(api_base(settings), secret_key)
    if problem is not None:
        raise UpstreamFailure("insecure_base", "stripe_api_base_insecure", problem)
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": api_base(settings)},
        max_network_retries=settings.stripe_max_network_retries,
        http_client=BudgetedRequestsClient(timeout=settings.stripe_timeout),
    )


def as_json(obj: Any) -> dict[str, Any]:
    """A Stripe object exactly as Stripe sent it (the SDK's objects coerce some fields)."""
    response = getattr(obj, "last_response", None)
    body = getattr(response, "body", None)
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "id" in obj and parsed.get("id") == obj["id"]:
            return parsed
    data: dict[str, Any] = obj.to_dict(recursive=True, for_json=True)
    return data


def rate_limit_delay(attempt: int) -> float:
    base: float = min(RATE_LIMIT_FIRST_DELAY * (2**attempt), RATE_LIMIT_MAX_DELAY)
    return base * (0.5 + random.random() / 2)


@dataclass(frozen=True)
class StripeConnection:
    merchant_id: str
    env: str
    account_id: str
    publishable_key: str
    key_hint: str
    secret_key_kind: str  # "sk" (standard) or "rk" (restricted)
    secret_key_mode: str  # "test" or "live"
    publishable_key_mode: str
    client: stripe.StripeClient
    context: ErrorContext

    def __repr__(self) -> str:
        return f"StripeConnection({self.merchant_id}, {self.env}, {self.account_id})"

    def call(self, operation: str, action: str, fn: Callable[[], T]) -> T:
        """Run one SDK call: retry rate limits with backoff, map every Stripe error.

        ``fn`` must carry its own idempotency key (``post_options``) so a retry is the same
        request to Stripe. ``action`` finishes "while trying to …" in messages.
        """
        attempt = 0
        while True:
            self._check_budget(operation, action)
            try:
                result = fn()
            except stripe.RateLimitError as exc:
                left = budget_left()
                if attempt < self.context.retries and (left is None or left > RATE_LIMIT_MAX_DELAY):
                    delay = rate_limit_delay(attempt)
                    attempt += 1
                    log().info(
                        "stripe rate limit, retrying",
                        operation=operation,
                        attempt=attempt,
                        delay=round(delay, 2),
                    )
                    time.sleep(delay)
                    continue
                raise self._problem(operation, exc, action) from None
            except stripe.StripeError as exc:
                raise self._problem(operation, exc, action) from None
            metrics.STRIPE_API_CALLS.labels(operation, "ok").inc()
            return result

    def _check_budget(self, operation: str, action: str) -> None:
        left = budget_left()
        if left is None or left > 0:
            return
        metrics.STRIPE_API_CALLS.labels(operation, "stripe_timeout").inc()
        log().warning(
            "stripe time budget spent",
            merchant_id=self.merchant_id,
            env=self.env,
            operation=operation,
        )
        raise UpstreamFailure(
            "timeout",
            "stripe_timeout",
            f"Stripe did not answer in time while trying to {action}: this request's calls to "
            "Stripe ran out of their time budget (MERCHANT_BACKEND_STRIPE_REQUEST_BUDGET); try "
            "again; if it persists check https://status.stripe.com",
            api_base=self.context.api_base,
            operation=operation,
        )

    def _problem(self, operation: str, exc: stripe.StripeError, action: str) -> UpstreamFailure:
        problem = problem_from(exc, self.context, action)
        problem.operation = operation
        metrics.STRIPE_API_CALLS.labels(operation, problem.code).inc()
        log().warning(
            "stripe call failed",
            merchant_id=self.merchant_id,
            env=self.env,
            operation=operation,
            code=problem.code,
            status=exc.http_status,
            request_id=exc.request_id,
        )
        return problem


def _mode(key: str) -> str:
    parts = key.split("_")
    return parts[1] if len(parts) > 2 else ""


class ClientCache:
    """Clients per (merchant, env), rebuilt when the data set or the settings change.

    A client keeps its HTTP sessions, so reusing it saves a TLS handshake per call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], tuple[tuple[Any, ...], stripe.StripeClient]] = {}

    def get(self, settings: Settings, merchant_id: str, env: str, secrets: Any) -> Any:
        fingerprint = (
            secrets.version,
            api_base(settings),
            settings.stripe_timeout,
            settings.stripe_max_network_retries,
        )
        key = (merchant_id, env)
        with self._lock:
            held = self._clients.get(key)
            if held is not None and held[0] == fingerprint:
                return held[1]
            client = build_client(settings, secrets.secret_key)
            self._clients[key] = (fingerprint, client)
            return client


_caches: weakref.WeakKeyDictionary[Runtime, ClientCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_for(rt: Runtime) -> ClientCache:
    with _caches_lock:
        cache = _caches.get(rt)
        if cache is None:
            cache = _caches[rt] = ClientCache()
        return cache


def connect(rt: Runtime, merchant_id: str, env: str) -> StripeConnection:
    """The Stripe connection of a data set; ``NotFound`` if there is none."""
    with db.read(rt.engine) as conn:
        secrets = datasets.secrets(conn, rt.keys.for_token, merchant_id, env)
    if secrets is None:
        raise NotFound(
            f"no {env} data set for {merchant_id}: store the Stripe keys first "
            "('merchant-backend stripe set' or PUT …/stripe/{env})"
        )
    settings = rt.settings
    client = _cache_for(rt).get(settings, merchant_id, env, secrets)
    hint = mask(secrets.secret_key) or "the secret key"
    return StripeConnection(
        merchant_id=merchant_id,
        env=env,
        account_id=secrets.account_id,
        publishable_key=secrets.publishable_key,
        key_hint=hint,
        secret_key_kind=secrets.secret_key.split("_", 1)[0],
        secret_key_mode=_mode(secrets.secret_key),
        publishable_key_mode=_mode(secrets.publishable_key),
        client=client,
        context=ErrorContext(
            account_id=secrets.account_id,
            env=env,
            key_hint=hint,
            api_base=api_base(settings),
            timeout=settings.stripe_timeout,
            retries=settings.stripe_max_network_retries,
        ),
    )
