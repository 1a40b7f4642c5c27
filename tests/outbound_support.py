"""A real HTTP receiver for outbound notifications, verifying each with the reference
Standard Webhooks library (``standardwebhooks`` from PyPI), never with our own code.

Its behaviour is switched by the test: answer 2xx, answer 500, or hang until released.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, func, select
from standardwebhooks import Webhook, WebhookVerificationError

from merchant_backend.store.schema import (
    outbound_attempts,
    outbound_deliveries,
    outbound_messages,
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # read when listening starts: a class attribute, not set later


@dataclass
class Received:
    webhook_id: str
    message: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """One destination's server. ``mode``: "ok", "fail" (500), "hang" (until ``release``, then 500),
    "redirect" (302 elsewhere), "big" (a 1 MiB answer)."""

    secret: str | None = None
    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: int = 0
    # The webhook-id of every request, answered or not (a hung one included).
    seen_ids: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    got_request: threading.Event = field(default_factory=threading.Event)
    got_delivery: threading.Condition = field(default_factory=threading.Condition)
    verify_timestamps: bool = True

    def __post_init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def by_id(self) -> dict[str, Received]:
        """What the receiver acts on: each webhook-id once (a retry repeats the id)."""
        out: dict[str, Received] = {}
        for r in self.received:
            out.setdefault(r.webhook_id, r)
        return out

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Until ``count`` distinct messages arrived (woken by each delivery, not polled)."""
        with self.got_delivery:
            return self.got_delivery.wait_for(lambda: len(self.by_id()) >= count, timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests += 1
                receiver.seen_ids.append(self.headers.get("webhook-id", ""))
                receiver.got_request.set()
                mode = receiver.mode
                if mode == "hang":
                    # Held until released; then it fails (its sender may be long gone).
                    receiver.release.wait(30)
                    mode = "fail"
                if mode == "fail":
                    self._answer(500, b"receiver is down")
                    return
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    assert receiver.secret is not None
                    if receiver.verify_timestamps:
                        message = Webhook(receiver.secret).verify(body, headers)
                    else:
                        import json

                        message = json.loads(body)
                        wh = Webhook(receiver.secret)
                        from datetime import UTC, datetime

                        ts = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)
                        expected = wh.sign(headers["webhook-id"], ts, body.decode())
                        assert expected in headers["webhook-signature"].split(" ")
                except (WebhookVerificationError, AssertionError, KeyError) as exc:
                    receiver.rejected.append(repr(exc))
                    self._answer(400, b"bad signature")
                    return
                with receiver.got_delivery:
                    receiver.received.append(Received(headers["webhook-id"], message, headers))
                    receiver.got_delivery.notify_all()
                if mode == "big":
                    self._answer(200, b"x" * (1024 * 1024))
                else:
                    self._answer(204 if mode == "empty" else 200, b"thanks")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

        return Handler


def delivery_states(engine: Engine, destination_id: str) -> dict[str, int]:
    d = outbound_deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.state, func.count())
            .where(d.c.destination_id == destination_id)
            .group_by(d.c.state)
        )
        return {r[0]: int(r[1]) for r in rows}


def messages(engine: Engine, merchant_id: str, env: str = "stage") -> list[Any]:
    import orjson

    m = outbound_messages
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.c.payload)
            .where(m.c.merchant_id == merchant_id, m.c.env == env, m.c.sequence > 0)
            .order_by(m.c.sequence)
        )
        return [orjson.loads(r.payload) for r in rows]


def attempts(engine: Engine, destination_id: str) -> list[Any]:
    a = outbound_attempts
    with engine.connect() as conn:
        return list(
            conn.execute(select(a).where(a.c.destination_id == destination_id).order_by(a.c.id))
        )


def newest_per_object(msgs: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> dict[str, Any]:
    """Per object id, the object of the message with the greatest sequence."""
    best: dict[str, dict[str, Any]] = {}
    for msg in msgs:
        obj = msg["data"]["object"]
        held = best.get(obj["id"])
        if held is None or msg["sequence"] > held["sequence"]:
            best[obj["id"]] = msg
    return {k: v["data"]["object"] for k, v in best.items()}


def add_destination(
    runtime: Any,
    merchant_id: str | None,
    url: str,
    *,
    env: str = "stage",
    object_types: tuple[str, ...] | None = None,
) -> tuple[Any, str]:
    """A destination written straight into the store (the API has its own tests)."""
    from merchant_backend.outbound import signing
    from merchant_backend.store import db
    from merchant_backend.store import destinations as store

    secret = signing.new_secret()
    with db.write(runtime.engine) as conn:
        dest = store.create(
            conn,
            runtime.keys.get(),
            merchant_id=merchant_id,
            env=env,
            url=url,
            description="test receiver",
            object_types=object_types or store.OBJECT_TYPES,
            secret=secret,
        )
    return dest, secret


def allowing_local(runtime: Any, **changes: Any) -> Any:
    """``runtime`` with deliveries allowed to this machine (the tests' receivers), each given
    2 s; ``changes`` are more settings to change."""
    from merchant_backend.runtime import Runtime

    s = runtime.settings.model_copy(
        update={"outbound_allow_private": True, "outbound_timeout": 2.0, **changes}
    )
    return Runtime(s, engine=runtime.engine)
