"""The merchant's web pages: server-rendered, usable without JavaScript.

``router`` holds every page, one module per resource (its GET and POST routes together);
``static_files()`` serves our own stylesheet and script.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from merchant_backend.web import (
    pages_auth,
    pages_customers,
    pages_disputes,
    pages_events,
    pages_fallback,
    pages_merchants,
    pages_notifications,
    pages_overview,
    pages_payments,
    pages_stripe,
    preferences,
)
from merchant_backend.web.render import STATIC

router = APIRouter(include_in_schema=False)
for pages in (
    pages_auth,
    preferences,
    pages_merchants,
    pages_overview,
    pages_stripe,
    pages_payments,
    pages_disputes,
    pages_customers,
    pages_events,
    pages_notifications,
):
    router.include_router(pages.router)
# Last, on purpose: the catch-all under /m/ must not shadow any page above.
router.include_router(pages_fallback.router)


class _StaticFiles(StaticFiles):
    """Static files with ``nosniff``, so a file is only ever run as what it is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, send_with_headers)  # type: ignore[arg-type]


def static_files() -> StaticFiles:
    return _StaticFiles(directory=STATIC)


__all__ = ["router", "static_files"]
