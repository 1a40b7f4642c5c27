"""A small fake of Stripe's HTTP API for what localstripe lacks.

It answers only what our client asks — ``GET /v1/account``, ``/v1/webhook_endpoints`` (list,
create, update), ``GET /v1/events`` (newest first, ``created[...]``, ``starting_after``,
``limit``), PaymentIntent create/confirm/capture with a decline — with Stripe's published object
shapes (tests/fixtures/stripe), Stripe's error format (401 bad key, 403 restricted key, 429,
402) and its idempotent replays (``Idempotent-Replayed: true``), and records every request so
tests can assert what our client sent. It checks nothing of our
logic itself: it stands for Stripe's documented contract, nothing more.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests import stripe_factory as sf


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]

    def one(self, name: str) -> str | None:
        values = self.query.get(name) or self.form.get(name)
        return values[0] if values else None

    def array(self, name: str) -> list[str]:
        """A form array as the SDK encodes it (``name[0]=…&name[1]=…``) or ``name[]=…``."""
        source = self.form if self.method == "POST" else self.query
        indexed = sorted(
            (int(k[len(name) + 1 : -1]), v[0])
            for k, v in source.items()
            if k.startswith(f"{name}[") and k[len(name) + 1 : -1].isdigit()
        )
        return [v for _, v in indexed] + source.get(f"{name}[]", [])


@dataclass
class Key:
    account_id: str
    # (method, path prefix) -> the permission Stripe names in its 403
    denied: dict[tuple[str, str], str] = field(default_factory=dict)


def masked(key: str) -> str:
    """How Stripe shows a key in its own error messages."""
    return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]


def stripe_error(status: int, type_: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": type_, "message": message, **extra}}


class FakeStripe:
    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.endpoints: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.saved: dict[str, tuple[int, str]] = {}
        self.requests: list[Recorded] = []
        self.queued: list[tuple[int, dict[str, Any]]] = []
        self.release = threading.Event()
        self.hang = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_key(self, key: str, account_id: str, denied: dict[str, str] | None = None) -> None:
        """``denied`` maps e.g. "GET /v1/account" to the permission a restricted key lacks."""
        rules: dict[tuple[str, str], str] = {}
        for route, permission in (denied or {}).items():
            method, prefix = route.split(" ", 1)
            rules[(method, prefix)] = permission
        self.keys[key] = Key(account_id, rules)

    def add_endpoint(self, url: str, enabled_events: list[str], **overrides: Any) -> dict[str, Any]:
        endpoint = sf.obj(
            "webhook_endpoint",
            id=f"we_{secrets.token_hex(8)}",
            url=url,
            enabled_events=list(enabled_events),
            **overrides,
        )
        self.endpoints.append(endpoint)
        return endpoint

    def fail_next(self, status: int, body: dict[str, Any], times: int = 1) -> None:
        self.queued.extend([(status, body)] * times)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    # -- the API ---------------------------------------------------------------------------
    def answer(self, rec: Recorded) -> tuple[int, dict[str, Any], bool]:
        """Stripe saves a POST's answer under its Idempotency-Key and replays it (24 h)."""
        key = rec.headers.get("idempotency-key") if rec.method == "POST" else None
        if key is not None and key in self.saved:
            status, payload = self.saved[key]
            return status, json.loads(payload), True
        status, payload = self.handle(rec)
        if key is not None and status not in (401, 429) and status < 500:
            self.saved[key] = (status, json.dumps(payload))
        return status, payload, False

    def handle(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        if self.queued:
            return self.queued.pop(0)
        auth = rec.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        key = self.keys.get(token)
        if key is None:
            return stripe_error(
                401, "invalid_request_error", f"Invalid API Key provided: {masked(token)}"
            )
        for (method, prefix), permission in key.denied.items():
            if rec.method == method and rec.path.startswith(prefix):
                return stripe_error(
                    403,
                    "invalid_request_error",
                    f"The provided key '{masked(token)}' does not have the required permissions "
                    f"for this endpoint on account '{key.account_id}'. Having the '{permission}' "
                    "permission would allow this request to continue.",
                )
        route = (rec.method, rec.path)
        if route == ("GET", "/v1/account"):
            return 200, sf.obj("account", id=key.account_id)
        if route == ("GET", "/v1/webhook_endpoints"):
            return 200, self._list(self.endpoints, rec, "/v1/webhook_endpoints")
        if route == ("POST", "/v1/webhook_endpoints"):
            return self._create_endpoint(rec)
        if rec.method == "POST" and rec.path.startswith("/v1/webhook_endpoints/"):
            return self._update_endpoint(rec)
        if route == ("GET", "/v1/events"):
            return 200, self._list(self._events_window(rec), rec, "/v1/events")
        if route == ("POST", "/v1/payment_intents"):
            return self._create_pi(rec)
        if rec.method == "GET" and rec.path.startswith("/v1/payment_intents/"):
            found = self.payment_intents.get(rec.path.split("/")[3])
            if found is not None:
                return 200, found
        if rec.path.startswith("/v1/payment_intents/"):
            pi_id = rec.path.split("/")[3]
            if pi_id not in self.payment_intents:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pi_id}'",
                    code="resource_missing",
                    param="intent",
                )
            if rec.path.endswith("/confirm"):
                return self._confirm_pi(rec)
            if rec.path.endswith("/capture"):
                pi = self.payment_intents[pi_id]
                pi.update(status="succeeded", amount_received=pi["amount"], amount_capturable=0)
                return 200, pi
            if rec.path.endswith("/cancel"):
                pi = self.payment_intents[pi_id]
                pi.update(
                    status="canceled",
                    canceled_at=pi["created"] + 1,
                    cancellation_reason=rec.one("cancellation_reason"),
                    amount_capturable=0,
                )
                return 200, pi
        return stripe_error(
            404, "invalid_request_error", f"Unrecognized request URL ({rec.method}: {rec.path})."
        )

    def _list(self, items: list[dict[str, Any]], rec: Recorded, url: str) -> dict[str, Any]:
        limit = int(rec.one("limit") or 10)
        after = rec.one("starting_after")
        start = 0
        if after is not None:
            ids = [i["id"] for i in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start : start + limit]
        return {
            "object": "list",
            "url": url,
            "has_more": start + limit < len(items),
            "data": page,
        }

    def _events_window(self, rec: Recorded) -> list[dict[str, Any]]:
        ops = {
            "gte": lambda c, v: c >= v,
            "gt": lambda c, v: c > v,
            "lte": lambda c, v: c <= v,
            "lt": lambda c, v: c < v,
        }
        chosen = list(self.events)
        for op, test in ops.items():
            value = rec.one(f"created[{op}]")
            if value is not None:
                chosen = [e for e in chosen if test(e["created"], int(value))]
        # Stripe lists newest first.
        order = {id(e): i for i, e in enumerate(self.events)}
        return sorted(chosen, key=lambda e: (e["created"], order[id(e)]), reverse=True)

    def _create_endpoint(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        endpoint = self.add_endpoint(
            rec.one("url") or "",
            rec.array("enabled_events"),
            api_version=rec.one("api_version"),
            description=rec.one("description"),
            status="enabled",
        )
        return 200, {**endpoint, "secret": "whsec_" + secrets.token_hex(16)}

    def _update_endpoint(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        endpoint_id = rec.path.rsplit("/", 1)[1]
        for endpoint in self.endpoints:
            if endpoint["id"] == endpoint_id:
                events = rec.array("enabled_events")
                if events:
                    endpoint["enabled_events"] = events
                if rec.one("disabled") is not None:
                    endpoint["status"] = "disabled" if rec.one("disabled") == "true" else "enabled"
                return 200, endpoint
        return stripe_error(
            404,
            "invalid_request_error",
            f"No such webhook endpoint: '{endpoint_id}'",
            code="resource_missing",
            param="id",
        )

    def _create_pi(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        pi_id = f"pi_{secrets.token_hex(8)}"
        pm = rec.one("payment_method")
        pi = sf.obj(
            "payment_intent",
            id=pi_id,
            amount=int(rec.one("amount") or 0),
            currency=rec.one("currency"),
            client_secret=f"{pi_id}_secret_{secrets.token_hex(8)}",
            capture_method=rec.one("capture_method") or "automatic",
            payment_method=pm,
            status="requires_confirmation" if pm else "requires_payment_method",
            last_payment_error=None,
            canceled_at=None,
        )
        self.payment_intents[pi_id] = pi
        return 200, pi

    def _confirm_pi(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        pi = self.payment_intents[rec.path.split("/")[3]]
        if pi["payment_method"] == "pm_card_visa_chargeDeclinedInsufficientFunds":
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            }
            pi.update(status="requires_payment_method", last_payment_error=dict(error))
            return 402, {"error": {**error, "payment_intent": pi}}
        if pi["capture_method"] == "manual":
            pi.update(status="requires_capture", amount_capturable=pi["amount"])
        else:
            pi.update(status="succeeded", amount_received=pi["amount"])
        return 200, pi

    # -- server ----------------------------------------------------------------------------
    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                rec = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    form=parse_qs(body, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                with fake._lock:
                    fake.requests.append(rec)
                if fake.hang:
                    fake.release.wait(30)
                with fake._lock:
                    status, payload, replayed = fake.answer(rec)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                if replayed:
                    self.send_header("Idempotent-Replayed", "true")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def running() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    try:
        yield fake
    finally:
        fake.stop()


def rate_limited() -> dict[str, Any]:
    return stripe_error(
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
    )[1]
