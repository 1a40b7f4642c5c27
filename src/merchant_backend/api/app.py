"""The ASGI application: management API, webhook receiver, web pages, operator endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from merchant_backend import __version__, logs, web
from merchant_backend.api import datasets, errors, merchants, ops, read, stripe_actions, webhooks
from merchant_backend.runtime import Runtime
from merchant_backend.store.inbox_writer import InboxWriter
from merchant_backend.store.secret_cache import SecretCache
from merchant_backend.stripe.reconcile import Scheduler
from merchant_backend.sync.worker import Worker

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


def create_app(runtime: Runtime, *, run_worker: bool = True) -> FastAPI:
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer = InboxWriter(runtime.engine, timeout=settings.ingest_commit_timeout)
        await writer.start()
        app.state.inbox_writer = writer
        worker = None
        if run_worker:
            worker = Worker(runtime.engine, settings)
            app.state.worker_thread = worker.start_thread()
        reconciler = None
        if settings.reconcile_interval > 0:
            reconciler = Scheduler(runtime, settings.reconcile_interval)
            app.state.reconcile_thread = reconciler.start_thread()
        log.info("started", version=__version__, worker=run_worker)
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.stop()
                app.state.reconcile_thread.join(timeout=10)
            if worker is not None:
                worker.stop()
                app.state.worker_thread.join(timeout=10)
            await writer.stop()

    app = _App(
        title="merchant-backend",
        version=__version__,
        description="Connects merchants' Stripe accounts and keeps their payment state true.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.secret_cache = SecretCache(runtime)
    errors.install(app)
    app.add_route(
        "/webhooks/stripe/{merchant_id}/{env}",
        webhooks.receive,
        methods=["POST"],
        include_in_schema=False,
    )
    app.include_router(ops.router)
    app.include_router(merchants.router)
    app.include_router(datasets.router)
    app.include_router(read.router)
    stripe_actions.install(app)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    return app
