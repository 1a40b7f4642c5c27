"""``serve`` and ``worker``: the service's processes (HTTP with the event worker and the
notification dispatcher, or a worker alone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from merchant_backend import logs, serve_guide
from merchant_backend import settings as settings_module
from merchant_backend.cli.common import runtime
from merchant_backend.cli.errors import BadInput, guarded
from merchant_backend.cli.output import fail
from merchant_backend.services import database
from merchant_backend.settings import SERVE_NO_DISPATCHER_ENV, SERVE_NO_WORKER_ENV


def uvicorn_options() -> dict[str, Any]:
    """How ``serve`` runs uvicorn; the benchmark's bare endpoint uses the same."""
    from merchant_backend.http_limits import uvicorn_http_options

    return {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # 431 for a request line and headers past 64 KiB, before any body is read (issue 9).
        **uvicorn_http_options(),
    }


@guarded
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="do not apply events in this process")
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            help="HTTP processes sharing the port, each with its own inbox writer and worker "
            "(PostgreSQL only)",
        ),
    ] = 1,
    no_dispatcher: Annotated[
        bool,
        typer.Option("--no-dispatcher", help="do not send outbound notifications in this process"),
    ] = False,
) -> None:
    """Run the HTTP service (with the event worker and the notification dispatcher
    in-process unless --no-worker / --no-dispatcher)."""
    import uvicorn

    found = settings_module.config_file()
    if processes < 1:
        raise BadInput("--processes must be 1 or more", "--processes")
    with runtime() as rt:
        weak_admin_token = rt.settings.admin_token_problem()
        if weak_admin_token is not None:
            fail(2, "invalid_config", weak_admin_token, "MERCHANT_BACKEND_ADMIN_TOKEN")
        key_existed = Path(rt.settings.master_key_file).exists()
        if processes > 1 and database.is_sqlite(rt):
            raise BadInput(
                f"--processes {processes} needs PostgreSQL: SQLite lets one process write at a "
                "time, so more processes would only wait on each other for its lock (and answer "
                "503 when the wait runs out). On SQLite run one process, which already commits "
                "many deliveries at once; for more, set MERCHANT_BACKEND_DATABASE_URL to a "
                "PostgreSQL database.",
                "--processes",
            )
        if processes > 1 and rt.settings.rate_limit_storage.startswith("memory"):
            # Each process then counts failed sign-ins on its own: a guesser gets N times the
            # allowance. Not refused (the limit still holds per process), but said.
            logs.get("merchant_backend.cli").warning(
                "failed sign-ins are counted per process: with --processes, set "
                "MERCHANT_BACKEND_RATE_LIMIT_STORAGE=redis://host:6379 so they share the counts",
                processes=processes,
            )
        database.migrate(rt)
        rt.keys.get()  # fail now, not on the first request, if the key is unusable
        # Once it answers: the address, the first merchant, the master key and its backup.
        url = serve_guide.browser_url(host, port)
        serve_guide.announce_when_ready(
            url, serve_guide.facts(rt, found, url, key_existed=key_existed)
        )
    # The app is built by its factory (merchant_backend.asgi), not here: the CLI is an adapter
    # beside the API and the web pages and imports neither.
    os.environ[SERVE_NO_WORKER_ENV] = "1" if no_worker else "0"
    os.environ[SERVE_NO_DISPATCHER_ENV] = "1" if no_dispatcher else "0"
    # More than one: uvicorn's supervisor starts that many processes on the one socket; each
    # builds its own app (inbox writer, worker) through the factory.
    uvicorn.run(
        "merchant_backend.asgi:factory",
        factory=True,
        host=host,
        port=port,
        workers=processes if processes > 1 else None,
        **uvicorn_options(),
    )


@guarded
def worker(
    no_dispatcher: Annotated[
        bool,
        typer.Option("--no-dispatcher", help="do not send outbound notifications in this process"),
    ] = False,
) -> None:
    """Apply inbox events to the projections and send outbound notifications (run as many
    as you like on PostgreSQL)."""
    import signal

    from merchant_backend.outbound.dispatcher import Dispatcher
    from merchant_backend.sync.worker import Worker

    with runtime() as rt:
        w = Worker(rt.engine, rt.settings)
        dispatcher = None if no_dispatcher else Dispatcher(rt)
        thread = dispatcher.start_thread() if dispatcher is not None else None

        def stop(*_: Any) -> None:
            w.stop()
            if dispatcher is not None:
                dispatcher.stop(wait=False)

        signal.signal(signal.SIGTERM, stop)
        try:
            w.run_forever()
        except KeyboardInterrupt:
            stop()
        if dispatcher is not None and thread is not None:
            dispatcher.stop()
            thread.join(timeout=15)
