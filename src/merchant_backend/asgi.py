"""The ASGI application: management API, webhook receiver, web pages, operator endpoints.

The composition root, above the adapters: it puts the API's and the web pages' routes into one
app and starts the background work (inbox writer, worker, reconcile scheduler). ``serve`` runs
it through uvicorn's factory import string (``merchant_backend.asgi:factory``), so the CLI
never imports the other adapters and every server process builds its own app.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from merchant_backend import __version__, logs, web
from merchant_backend import settings as settings_module
from merchant_backend.api import (
    datasets,
    destinations,
    docs,
    errors,
    merchants,
    ops,
    read,
    stripe_actions,
    webhooks,
)
from merchant_backend.api.no_store import NoStore
from merchant_backend.api.nul_guard import RefuseNul
from merchant_backend.runtime import Runtime
from merchant_backend.services.background import Background
from merchant_backend.settings import SERVE_NO_DISPATCHER_ENV, SERVE_NO_WORKER_ENV
from merchant_backend.store.inbox_writer import InboxWriter

log = logs.get("merchant_backend.app")


class _App(FastAPI):
    """FastAPI, except that Stripe's webhook POSTs go straight to their handler (hot path)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = webhooks.match(scope["path"])
            if params is not None:
                await webhooks.asgi(self, params, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    runtime: Runtime, *, run_worker: bool = True, run_dispatcher: bool | None = None
) -> FastAPI:
    """``run_dispatcher`` (outbound notifications) defaults to ``run_worker``."""
    dispatching = run_worker if run_dispatcher is None else run_dispatcher
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer = InboxWriter(
            runtime.engine,
            timeout=settings.ingest_commit_timeout,
            on_commit=runtime.inbox_bell.ring,
        )
        await writer.start()
        app.state.inbox_writer = writer
        background = Background(runtime, run_worker=run_worker, run_dispatcher=dispatching)
        background.start()
        # Only the threads that run (healthz and tests look for them).
        for name in ("worker_thread", "prune_thread", "reconcile_thread", "dispatcher_thread"):
            thread = getattr(background, name)
            if thread is not None:
                setattr(app.state, name, thread)
        log.info("started", version=__version__, worker=run_worker)
        try:
            yield
        finally:
            background.stop()
            await writer.stop()

    app = _App(
        title="merchant-backend",
        version=__version__,
        description="Connects merchants' Stripe accounts and keeps their payment state true.",
        lifespan=lifespan,
        docs_url=None,  # served offline by api/docs.py
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_middleware(NoStore)
    app.add_middleware(RefuseNul)
    app.state.secret_cache = runtime.secret_cache
    errors.install(app)
    app.add_route(
        "/webhooks/stripe/{merchant_id}/{env}",
        webhooks.receive,
        methods=["POST"],
        include_in_schema=False,
    )
    docs.install(app)
    app.include_router(ops.router)
    app.include_router(merchants.router, responses=errors.ERROR_RESPONSES)
    app.include_router(datasets.router, responses=errors.ERROR_RESPONSES)
    app.include_router(read.router, responses=errors.ERROR_RESPONSES)
    app.include_router(stripe_actions.router, responses=errors.ERROR_RESPONSES)
    app.include_router(destinations.merchant_router, responses=errors.ERROR_RESPONSES)
    app.include_router(destinations.admin_router, responses=errors.ERROR_RESPONSES)
    destinations.document_webhooks(app)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    return app


def factory() -> FastAPI:
    """The app of ``merchant-backend serve``, built in each server process (uvicorn calls it).

    ``serve`` has migrated the database and checked the master key before; its options come
    through the environment, which every process uvicorn starts inherits.
    """
    settings, _found = settings_module.load()
    logs.setup(settings.log_level, settings.log_json)
    # The engine lives as long as the process: nothing to close before it exits.
    application = create_app(
        Runtime(settings),
        run_worker=os.environ.get(SERVE_NO_WORKER_ENV) != "1",
        run_dispatcher=os.environ.get(SERVE_NO_DISPATCHER_ENV) != "1",
    )
    # Everything built so far lives as long as the process: out of the collector's sight,
    # full collections no longer walk it (they were the slowest 1% of webhook answers).
    gc.freeze()
    # The inbox writer's thread must get the GIL back as soon as its fsync returns: the
    # default 5 ms switch interval was added to group commits while the loop was busy.
    sys.setswitchinterval(0.001)
    return application
