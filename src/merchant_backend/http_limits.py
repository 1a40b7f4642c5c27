"""Bounds on what a client may send before its request's headers end (issue 9).

uvicorn's httptools protocol (the fast one, which ``serve`` uses) buffers a request line and
headers of any size: a 32 MiB header was read into memory and handed to the app. This protocol
counts the bytes received while a request's head is still incomplete and, past
``MAX_HEAD_BYTES``, answers ``431 Request Header Fields Too Large`` and closes the connection,
before any body is read and before the app sees the request. The h11 protocol has its own bound
(``h11_max_incomplete_event_size``), set to the same figure.

The count is per TCP read: a read that ends one request's body and starts the next (HTTP
pipelining, which Stripe and browsers do not use) counts whole towards the next head.
"""

from __future__ import annotations

from typing import Any

# uvicorn[standard] (a dependency) brings httptools.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024

_BODY = b"request line and headers are too large\n"
_RESPONSE_431 = b"".join(
    [
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_BODY),
        b"connection: close\r\n",
        b"\r\n",
        _BODY,
    ]
)


def uvicorn_http_options() -> dict[str, Any]:
    """The ``uvicorn.run``/``Config`` options that bound the request head."""
    return {"http": BoundedHttpToolsProtocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request line and headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("request head too large: answered 431")
            self.transport.write(_RESPONSE_431)
            self.transport.close()
