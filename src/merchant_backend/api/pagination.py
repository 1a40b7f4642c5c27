"""Stripe-style list pages: ``limit`` (1–100, default 10), ``starting_after``, ``has_more``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=100, description="page size (1–100)")]
StartingAfter = Annotated[
    str | None, Query(max_length=255, description="id of the last item of the previous page")
]


def page(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "data": data, "has_more": has_more}
