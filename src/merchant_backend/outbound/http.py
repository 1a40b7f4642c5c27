"""One HTTP POST of a notification to a checked target.

- It connects to the address ``ssrf.check`` vetted (the name is not resolved again), while
  TLS still verifies the certificate against the host name (SNI and Host header too).
- Redirects are not followed: a 3xx is a failed attempt like any other non-2xx.
- The whole attempt has one deadline (the timeout); at most ``MAX_BODY`` bytes of the answer
  are read, and only an excerpt is kept.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from merchant_backend import __version__
from merchant_backend.outbound import failures
from merchant_backend.outbound.ssrf import Target

MAX_BODY = 4096
EXCERPT = 500
USER_AGENT = f"merchant-backend/{__version__} (notifications)"


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration: float


def _excerpt(raw: bytes) -> str | None:
    text = raw.decode("utf-8", errors="replace").strip()
    return text[:EXCERPT] or None


def _connection(
    target: Target, timeout: float, context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host,
            target.port,
            timeout=timeout,
            context=context or ssl.create_default_context(),
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    address = target.address

    def pinned(
        addr: tuple[str, int], timeout: float | None = None, source: object = None
    ) -> socket.socket:
        # The checked address, never a fresh DNS answer for target.host.
        return socket.create_connection((address, addr[1]), timeout)

    conn._create_connection = pinned  # type: ignore[attr-defined]
    return conn


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> Answer:
    started = time.monotonic()
    deadline = started + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {timeout:g} s")
        return left

    conn = _connection(target, timeout, context)
    try:
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
        )
        assert conn.sock is not None
        conn.sock.settimeout(remaining())
        response = conn.getresponse()
        conn.sock.settimeout(remaining()) if conn.sock is not None else None
        raw = response.read(MAX_BODY)
        status = response.status
        error = None
        if 300 <= status < 400:
            error = failures.redirect(response.getheader("Location", "?"))
        return Answer(status, _excerpt(raw), error, time.monotonic() - started)
    except (OSError, http.client.HTTPException, TimeoutError) as exc:
        if isinstance(exc, socket.timeout | TimeoutError):
            error = failures.no_answer(timeout)
        else:
            error = failures.network(exc)
        return Answer(None, None, error[:EXCERPT], time.monotonic() - started)
    finally:
        conn.close()
