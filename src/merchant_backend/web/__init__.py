"""The merchant's web pages: server-rendered, usable without JavaScript.

``router`` holds every page; ``static_files()`` serves our own stylesheet and script.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from merchant_backend.web import (
    pages_admin,
    pages_auth,
    pages_data,
    pages_dataset_actions,
    pages_payment_actions,
    pages_stripe,
    preferences,
)
from merchant_backend.web.render import STATIC

router = APIRouter(include_in_schema=False)
router.include_router(pages_auth.router)
router.include_router(preferences.router)
router.include_router(pages_stripe.router)
router.include_router(pages_admin.router)
router.include_router(pages_dataset_actions.router)
# Before pages_data: /payments/new must not be read as a payment id, nor fall into its catch-all.
router.include_router(pages_payment_actions.router)
router.include_router(pages_data.router)


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
