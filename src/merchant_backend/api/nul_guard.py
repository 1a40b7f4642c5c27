"""A NUL in the path or the query string is refused with 400 before any route runs (issue 9).

PostgreSQL's text types cannot hold NUL: a ``?object_id=%00`` reached the database and came
back as a 500 (schemathesis found it). No id, cursor, filter or page address of ours contains
one, so the request is malformed whatever route it is for. Bodies are checked by their models.
"""

from __future__ import annotations

import re

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

_NUL = re.compile(rb"%00|\x00")
_BODY = orjson.dumps(
    {
        "error": {
            "code": "invalid_request",
            "message": "the address contains a NUL character (%00), which no id or value has",
            "field": None,
        }
    }
)


class RefuseNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            _NUL.search(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape"))
            or _NUL.search(scope.get("query_string", b""))
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BODY)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
