"""The catch-all under ``/m/``: registered last on purpose (``web/__init__.py``), so it only
answers addresses no other page claims."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from merchant_backend.services.sessions import WebSession
from merchant_backend.web.render import WebRoute, not_found
from merchant_backend.web.session import require_session

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/m/{rest:path}")
def unknown_page(rest: str, session: WebSession = Depends(require_session)) -> Response:
    """Any other address under /m/ answers the same HTML 404 as a foreign merchant's page."""
    raise not_found()
