"""The baseline: a bare ASGI endpoint on the same server stack as ``merchant-backend serve``.

It reads the whole body and answers what the webhook answers for a new event, nothing else:
no routing, no verification, no database. ``python -m bench.bare --port P``.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from merchant_backend.cli import uvicorn_options

_BODY = b'{"received":true,"duplicate":false}'
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"35")],
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(_START)
    await send({"type": "http.response.body", "body": _BODY})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **uvicorn_options())


if __name__ == "__main__":
    main()
