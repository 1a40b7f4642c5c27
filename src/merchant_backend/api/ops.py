"""For operators: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from merchant_backend import __version__
from merchant_backend.services import database

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    responses={503: {"description": "The database or the inbox writer is down (same body)."}},
)
def healthz(request: Request) -> JSONResponse:
    """200 when the database answers and the inbox writer runs; 503 otherwise."""
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        database.check_answers(state.runtime)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    writer = getattr(state, "inbox_writer", None)
    checks["inbox_writer"] = "ok" if writer is not None and writer.running else "stopped"
    worker = getattr(state, "worker_thread", None)
    checks["worker"] = (
        "in-process" if worker is not None and worker.is_alive() else "external or off"
    )
    ok = checks["database"] == "ok" and checks["inbox_writer"] == "ok"
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "version": __version__, "checks": checks},
        status_code=200 if ok else 503,
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
