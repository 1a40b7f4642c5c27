"""``Cache-Control: no-store`` on every answer but the static files (issue 9).

API answers carry new API tokens, PaymentIntents' client secrets and data sets; pages carry a
merchant's data. No browser or proxy cache may keep any of them. An answer that sets its own
``Cache-Control`` keeps it. Stripe's webhook POSTs take the fast path around this (their answer
carries nothing).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEADER = (b"cache-control", b"no-store")


class NoStore:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The static files and Swagger UI's assets (api/docs.py) hold no one's data.
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/docs/assets/")):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message = {**message, "headers": [*headers, _HEADER]}
            await send(message)

        await self.app(scope, receive, send_no_store)
