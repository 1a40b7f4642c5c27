"""The ``merchant-backend`` command (see CONTRACT.md).

Data goes to stdout as JSON. Errors go to stderr: one plain sentence when a person is at the
terminal, the API's error JSON when stderr is not a terminal or ``--json`` is given
(cli_output.py). Exit codes: 0 ok, 2 bad input, 1 any other failure. Secrets are read from
stdin ('-') or environment variables so they never show in the process list or shell history.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy.exc
import typer
from typer.core import TyperGroup

from merchant_backend import cli_output, clock, config_report, logs, serve_guide
from merchant_backend import settings as settings_module
from merchant_backend.crypto import MasterKeyError
from merchant_backend.errors import (
    Conflict,
    InvalidInput,
    NotConfigured,
    NotFound,
    UpstreamFailure,
    UpstreamKind,
)
from merchant_backend.runtime import Runtime
from merchant_backend.services import (
    connection,
    database,
    events,
    keys,
    merchant_access,
    merchants,
)
from merchant_backend.services import datasets as data_sets
from merchant_backend.services import reconcile as reconciling
from merchant_backend.services.reconcile import Run
from merchant_backend.settings import SERVE_NO_DISPATCHER_ENV, SERVE_NO_WORKER_ENV, ConfigError
from merchant_backend.stripe.reconcile import default_holder
from merchant_backend.validation import (
    DataSetInput,
    Env,
    parse_ascii_int,
    parse_duration,
    validate_env,
)

# Set by ``--json`` anywhere on the command line (see ``JsonUsageErrors.main``).
_json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors", default=False)
JSON_FLAG = "--json"


def write_error(
    error_code: str,
    message: str,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    error = cli_output.CliError(error_code, message, field, errors or [])
    cli_output.write(error, _json_errors.get())


def _take_json_flag(args: list[str]) -> tuple[list[str], bool]:
    """``--json`` may stand anywhere before a ``--``: it becomes the root option."""
    end = args.index("--") if "--" in args else len(args)
    found = JSON_FLAG in args[:end]
    if not found:
        return args, False
    return [JSON_FLAG, *(a for a in args[:end] if a != JSON_FLAG), *args[end:]], True


class JsonUsageErrors(TyperGroup):
    """Click's usage errors (a missing option, a malformed number) as the same error as any
    other, on stderr with exit 2: JSON for scripts, a sentence for a person. Also makes the
    help readable (cli_output.readable_help)."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        cli_output.readable_help(self)
        args, json_flag = _take_json_flag(list(sys.argv[1:] if args is None else args))
        _json_errors.set(json_flag)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
            code = rv if isinstance(rv, int) else 0
        except typer.TyperException as exc:
            # typer's own copy of click raises these; their exit_code is 2 for usage errors.
            code = int(getattr(exc, "exit_code", 1))
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]  # a bare group prints its help
            else:
                param = getattr(exc, "param", None)
                opts = getattr(param, "opts", None)
                field = opts[0] if opts else getattr(param, "name", None)
                kind = "invalid_request" if code == 2 else "error"
                message = exc.format_message()
                ctx = getattr(exc, "ctx", None)
                if code == 2 and ctx is not None and not cli_output.wants_json(_json_errors.get()):
                    message += f" See '{ctx.command_path} --help'."
                write_error(kind, message, field)
        except typer.Abort:
            write_error("aborted", "aborted")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="merchant-backend",
    cls=JsonUsageErrors,
    help="Connect merchants' Stripe accounts and keep their payment state true.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
merchants_app = typer.Typer(help="Create and list merchants.", no_args_is_help=True)
stripe_app = typer.Typer(
    help="A merchant's Stripe data sets (stage and live).", no_args_is_help=True
)
events_app = typer.Typer(help="The event inbox.", no_args_is_help=True)


@app.callback()
def _root(
    json_errors: Annotated[
        bool,
        typer.Option(
            JSON_FLAG,
            help="errors as JSON on stderr even at a terminal (always so when stderr is not one)",
        ),
    ] = False,
) -> None:
    """Connect merchants' Stripe accounts and keep their payment state true."""


app.add_typer(merchants_app, name="merchants")
app.add_typer(stripe_app, name="stripe")
app.add_typer(events_app, name="events")


class BadInput(Exception):
    def __init__(
        self, message: str, field: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors


def out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def fail(
    code: int,
    error_code: str,
    message: str,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> NoReturn:
    write_error(error_code, message, field, errors)
    raise typer.Exit(code)


@contextmanager
def runtime() -> Iterator[Runtime]:
    settings, _found = settings_module.load()
    logs.setup(settings.log_level, settings.log_json)
    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


# Stripe's failures that the caller can fix by changing the request are bad input (exit 2).
UPSTREAM_EXIT: dict[UpstreamKind, int] = {
    "idempotency_conflict": 2,
    "not_found": 2,
    "invalid_request": 2,
}


def upstream_exit_code(exc: UpstreamFailure) -> int:
    return UPSTREAM_EXIT.get(exc.kind, 1)


def guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """Map errors to the contract's exit codes, once for every command; never print a
    traceback with data in it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except typer.Exit:
            raise
        except InvalidInput as exc:
            errs = [{"field": e.field, "message": e.message} for e in exc.errors]
            fail(2, "invalid_request", exc.errors[0].message, exc.errors[0].field, errs)
        except BadInput as exc:
            fail(2, "invalid_request", str(exc), exc.field, exc.errors)
        except NotConfigured as exc:
            fail(2, "invalid_request", exc.message, exc.setting)
        except UpstreamFailure as exc:
            fail(upstream_exit_code(exc), exc.code, exc.message, exc.param)
        except Conflict as exc:
            fail(1, exc.code, exc.message)
        except NotFound as exc:
            fail(2, exc.code, exc.message)
        except LookupError as exc:
            fail(2, "not_found", str(exc.args[0]) if exc.args else "not found")
        except MasterKeyError as exc:
            fail(1, "master_key", str(exc))
        except ConfigError as exc:
            fail(2, "invalid_config", str(exc))
        except sqlalchemy.exc.OperationalError as exc:
            # The driver's first line says why (no such file, connection refused, bad password);
            # the rest is SQLAlchemy's pointer to its docs.
            reason = logs.redact(str(exc.orig or exc)).splitlines()[0][:300]
            advice = (
                "run 'merchant-backend migrate' to create the tables"
                if "no such table" in reason
                else "check MERCHANT_BACKEND_DATABASE_URL ('merchant-backend config' shows it "
                "and where it came from)"
            )
            fail(1, "database_unavailable", f"cannot use the database: {reason}; {advice}")
        except Exception as exc:
            fail(1, "error", f"{type(exc).__name__}: {logs.redact(str(exc))[:500]}")

    return wrapper


def read_secret(value: str | None, stdin_lines: Iterator[str]) -> str | None:
    if value == "-":
        try:
            return next(stdin_lines).strip()
        except StopIteration:
            raise BadInput("expected the secret on standard input, found nothing") from None
    return value


def _stdin_lines() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def _env(env: str) -> Env:
    return validate_env(env)


def _merchant(rt: Runtime, merchant_id: str) -> None:
    if not merchants.merchant_exists(rt, merchant_id):
        raise NotFound(f"no merchant {merchant_id}: see 'merchant-backend merchants list'")


@contextmanager
def _report_of_failure() -> Iterator[None]:
    """When Stripe stops a verify or a provisioning: its stored report on stdout, the error on
    stderr (``guarded``)."""
    try:
        yield
    except UpstreamFailure as failure:
        if failure.report is not None:
            out(failure.report)
        raise


def parse_since(text: str) -> int:
    """``--since``: unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = text.strip()
    seconds = parse_ascii_int(text)
    if seconds is not None:
        return seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since must be unix seconds or an ISO date such as 2026-01-31 or "
            f"2026-01-31T12:00:00Z, not {text[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


MerchantOpt = Annotated[str, typer.Option("--merchant", help="merchant id (mer_…)")]
EnvOpt = Annotated[str, typer.Option("--env", help="stage or live")]


@app.command("config")
@guarded
def config() -> None:
    """Print the settings in effect and where each came from; secrets masked.

    Each setting comes from the environment, else the config file (MERCHANT_BACKEND_CONFIG,
    default ./merchant-backend.env), else its default.
    """
    settings, found = settings_module.load()
    out(config_report.report(settings, found).as_json())


@app.command()
@guarded
def migrate() -> None:
    """Create or upgrade the database schema."""
    with runtime() as rt:
        database.migrate(rt)
        out({"migrated": True, "database": rt.engine.url.render_as_string(hide_password=True)})


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


@app.command()
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


@app.command()
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


@merchants_app.command("create")
@guarded
def merchants_create(
    name: Annotated[str, typer.Option("--name", help="the merchant's name")],
) -> None:
    """Create a merchant; prints its API token once."""
    if not name.strip() or len(name) > 200:
        raise BadInput("name must be 1 to 200 characters", "name")
    with runtime() as rt:
        out(merchants.create_merchant(rt, name.strip()).as_json())


@merchants_app.command("list")
@guarded
def merchants_list() -> None:
    """List merchants (never their tokens)."""
    with runtime() as rt:
        out([m.as_json() for m in merchants.list_merchants(rt)])


@merchants_app.command("rotate-token")
@guarded
def merchants_rotate_token(merchant: MerchantOpt) -> None:
    """Give the merchant a new API token (printed once); the old one stops working at once and
    the merchant's web sessions end."""
    with runtime() as rt:
        out(merchant_access.rotate_token(rt, merchant).as_json())


@merchants_app.command("disable")
@guarded
def merchants_disable(merchant: MerchantOpt) -> None:
    """Turn the merchant's API and web access off (its web sessions end); nothing is deleted
    and Stripe's webhooks keep being stored."""
    with runtime() as rt:
        out(merchant_access.disable(rt, merchant).as_json())


@merchants_app.command("enable")
@guarded
def merchants_enable(merchant: MerchantOpt) -> None:
    """Turn the merchant's API and web access on again (same token as before)."""
    with runtime() as rt:
        out(merchant_access.enable(rt, merchant).as_json())


@stripe_app.command("set")
@guarded
def stripe_set(
    merchant: MerchantOpt,
    env: EnvOpt,
    account_id: Annotated[
        str | None,
        typer.Option("--account-id", help="the Stripe account id (gear → Profile → Accounts)"),
    ] = None,
    publishable_key: Annotated[
        str | None,
        typer.Option("--publishable-key", help="pk_test_… for stage, pk_live_… for live"),
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(
            "--secret-key",
            envvar="MERCHANT_BACKEND_SECRET_KEY",
            show_envvar=True,
            help="sk_…/rk_…, or '-' to read it from stdin",
        ),
    ] = None,
    signing_secret: Annotated[
        str | None,
        typer.Option(
            "--signing-secret",
            envvar="MERCHANT_BACKEND_SIGNING_SECRET",
            show_envvar=True,
            help="the webhook's whsec_…, or '-' to read it from stdin",
        ),
    ] = None,
) -> None:
    """Store a data set, or change some of its fields.

    Only the options given change; the others keep their stored values. The data set as it
    would be after the change is checked as a whole, and nothing is stored if any field is
    wrong. A new data set needs --account-id, --publishable-key and --secret-key.
    """
    e = _env(env)
    lines = _stdin_lines()
    data = DataSetInput(
        account_id=account_id,
        publishable_key=publishable_key,
        secret_key=read_secret(secret_key, lines),
        webhook_signing_secret=read_secret(signing_secret, lines),
    )
    with runtime() as rt:
        _merchant(rt, merchant)
        stored = data_sets.save_data_set(rt, merchant, e, data, partial=True)
        out(stored.as_json(rt.settings.public_url))


@stripe_app.command("show")
@guarded
def stripe_show(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Show a data set, secrets masked, with its health."""
    e = _env(env)
    with runtime() as rt:
        _merchant(rt, merchant)
        stored = data_sets.get_data_set(rt, merchant, e)
        if stored is None:
            raise NotFound(f"no {e} data set for {merchant}: run 'merchant-backend stripe set'")
        out(stored.as_json(rt.settings.public_url))


@stripe_app.command("roll-secret")
@guarded
def stripe_roll_secret(
    merchant: MerchantOpt,
    env: EnvOpt,
    signing_secret: Annotated[
        str,
        typer.Option(
            "--signing-secret",
            envvar="MERCHANT_BACKEND_SIGNING_SECRET",
            show_envvar=True,
            help="the new whsec_…, or '-' to read it from stdin",
        ),
    ],
    old_valid_for: Annotated[
        int, typer.Option("--old-valid-for", help="seconds the old secret stays valid (0–86400)")
    ] = 86400,
) -> None:
    """Make a new signing secret current and keep the old one valid for a while (Stripe's roll)."""
    e = _env(env)
    secret = read_secret(signing_secret, _stdin_lines())
    assert secret is not None
    with runtime() as rt:
        _merchant(rt, merchant)
        stored = data_sets.roll_signing_secret(rt, merchant, e, secret, old_valid_for)
        out(stored.as_json(rt.settings.public_url))


@stripe_app.command("verify")
@guarded
def stripe_verify(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Check the data set against Stripe; prints the report (exit 1 if a check failed)."""
    e = _env(env)
    with runtime() as rt:
        _merchant(rt, merchant)
        with _report_of_failure():
            report = connection.verify_data_set(rt, merchant, e)
    out(report.as_json())
    if report.status == "failed":
        raise typer.Exit(1)


@stripe_app.command("provision-webhook")
@guarded
def stripe_provision_webhook(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Create the webhook endpoint with the 15 events and store its signing secret."""
    e = _env(env)
    with runtime() as rt:
        _merchant(rt, merchant)
        with _report_of_failure():
            result = connection.provision_webhook(rt, merchant, e)
        out(result.as_json())


@app.command()
@guarded
def reconcile(
    merchant: MerchantOpt,
    env: EnvOpt,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="start here (unix seconds or ISO date) instead of the last run's end"
        ),
    ] = None,
) -> None:
    """Fetch events Stripe did not deliver (GET /v1/events) into the inbox; resumable."""
    e = _env(env)
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise BadInput(str(exc), "since") from None
    with runtime() as rt:
        _merchant(rt, merchant)
        # Named in the "already running" message another caller gets while this one runs.
        holder = f"merchant-backend reconcile ({default_holder()})"
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (
                TextColumn("reconcile {task.fields[where]}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                # Stripe does not say how many events there are: a pulsing bar, and how far
                # back in time the listing has come.
                task = bar.add_task("", total=None, where=f"{merchant}/{e}", counts="")

                def show(run: Run) -> None:
                    counts = f"fetched {run.fetched} · new {run.new} · known {run.known}"
                    if run.oldest_seen is not None:
                        back = datetime.fromtimestamp(run.oldest_seen, UTC)
                        counts += f" · back to {back:%Y-%m-%d %H:%M} UTC"
                    bar.update(task, counts=counts)

                summary = reconciling.reconcile(
                    rt, merchant, e, since=start, on_page=show, holder=holder
                )
        else:
            summary = reconciling.reconcile(rt, merchant, e, since=start, holder=holder)
    out(summary.as_json())


@events_app.command("replay")
@guarded
def events_replay(
    merchant: MerchantOpt,
    env: EnvOpt,
    event_id: Annotated[str, typer.Argument(help="evt_…")],
) -> None:
    """Put an event back in line for the worker (any state, also dead)."""
    e = _env(env)
    with runtime() as rt:
        _merchant(rt, merchant)
        entry = events.replay_event(rt, merchant, e, event_id)
        if entry is None:
            raise NotFound(f"no event {event_id} in {e} for {merchant}")
        out(entry.as_json())


@events_app.command("prune")
@guarded
def events_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="age of the events to prune, e.g. 90d or 36h "
            "(default: MERCHANT_BACKEND_EVENT_RETENTION_DAYS)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count what would be removed")
    ] = False,
) -> None:
    """Remove the raw bodies of applied and ignored events older than the retention period.

    Their rows stay (a late duplicate from Stripe is still recognised), and so do pending,
    failed and dead events, the projections and each object's history. Small batches: the
    service keeps taking webhooks meanwhile.
    """
    from merchant_backend.services import retention

    with runtime() as rt:
        if older_than is not None:
            try:
                age = parse_duration(older_than)
            except ValueError as exc:
                raise BadInput(str(exc), "older_than") from None
        elif rt.settings.event_retention_days > 0:
            age = rt.settings.event_retention_days * retention.DAY
        else:
            raise BadInput(
                "retention is off (MERCHANT_BACKEND_EVENT_RETENTION_DAYS=0): "
                "pass --older-than, e.g. --older-than 90d",
                "older_than",
            )
        before = clock.now() - age
        if dry_run:
            result = retention.prune_events(rt, before, dry_run=True)
        elif not sys.stderr.isatty():
            # Without a terminal (cron, a container): a log line every 20 batches.
            progress = logs.get("merchant_backend.retention")
            batches = [0]

            def note(r: retention.PruneResult) -> None:
                batches[0] += 1
                if batches[0] % 20 == 0:
                    progress.info("prune progress", events=r.events, bytes=r.bytes)

            result = retention.prune_events(rt, before, on_batch=note)
        else:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            total, _bytes = retention.count_prunable(rt, before)
            columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("prune", total=total)
                result = retention.prune_events(
                    rt,
                    before,
                    on_batch=lambda r: bar.update(task, completed=r.events),
                )
    out(result.as_json())


@app.command("rotate-master-key")
@guarded
def rotate_master_key() -> None:
    """Re-encrypt every stored secret with a new master key, without downtime.

    With the key file: a new key is put first in the file (readers reload it when they meet
    it), every secret is re-encrypted, then the old key is dropped. With
    MERCHANT_BACKEND_MASTER_KEY: put the new key first, keep the old one after a comma,
    restart readers, run this, then remove the old key.
    """
    with runtime() as rt:
        out(keys.rotate_master_key(rt).as_json())


# --- destinations: outbound notifications (docs/outbound.md) -------------------------------

destinations_app = typer.Typer(
    help="Where a merchant's changes are sent (signed notifications).", no_args_is_help=True
)
app.add_typer(destinations_app, name="destinations")

DestinationArg = Annotated[str, typer.Argument(help="dst_…")]
OwnerOpt = Annotated[
    str | None, typer.Option("--merchant", help="merchant id (mer_…); see --installation")
]
InstallationOpt = Annotated[
    bool,
    typer.Option(
        "--installation", help="the operator's destinations, which get every merchant's changes"
    ),
]


def _owner(rt: Runtime, merchant: str | None, installation: bool) -> str | None:
    if installation == (merchant is not None):
        raise BadInput("give --merchant ID, or --installation for the operator's", "merchant")
    if merchant is not None:
        _merchant(rt, merchant)
    return merchant


def _types(value: str | None) -> list[str] | None:
    return None if value is None else [t.strip() for t in value.split(",") if t.strip()]


def _destination_call(
    merchant: str | None,
    installation: bool,
    env: str,
    action: Callable[[Runtime, str | None, Env], Any],
) -> None:
    e = _env(env)
    with runtime() as rt:
        owner = _owner(rt, merchant, installation)
        out(action(rt, owner, e))


@destinations_app.command("add")
@guarded
def destinations_add(
    env: EnvOpt,
    url: Annotated[str, typer.Option("--url", help="https://… (http only in stage)")],
    merchant: OwnerOpt = None,
    installation: InstallationOpt = False,
    description: Annotated[str, typer.Option("--description")] = "",
    object_types: Annotated[
        str | None,
        typer.Option(
            "--object-types",
            help="comma separated: payment_intent,customer,payment_method,dispute,account "
            "(default: all)",
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="add it switched off")] = False,
) -> None:
    """Add a destination; prints its signing secret (whsec_…) once."""
    from merchant_backend.services import notifications

    data = notifications.DestinationInput(
        url=url,
        description=description,
        object_types=_types(object_types),
        enabled=not disabled,
    )
    _destination_call(
        merchant,
        installation,
        env,
        lambda rt, owner, e: notifications.create_destination(rt, owner, e, data).as_json(),
    )


@destinations_app.command("list")
@guarded
def destinations_list(
    env: EnvOpt, merchant: OwnerOpt = None, installation: InstallationOpt = False
) -> None:
    """The destinations, with their delivery counts (never their secrets)."""
    from merchant_backend.services import notifications

    _destination_call(
        merchant,
        installation,
        env,
        lambda rt, owner, e: [v.as_json() for v in notifications.list_destinations(rt, owner, e)],
    )


@destinations_app.command("update")
@guarded
def destinations_update(
    env: EnvOpt,
    destination_id: DestinationArg,
    merchant: OwnerOpt = None,
    installation: InstallationOpt = False,
    url: Annotated[str | None, typer.Option("--url")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    object_types: Annotated[str | None, typer.Option("--object-types")] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="switch it on or off")
    ] = None,
) -> None:
    """Change a destination's URL, description, object types, or switch it on or off."""
    from merchant_backend.services import notifications

    data = notifications.DestinationInput(
        url=url, description=description, object_types=_types(object_types), enabled=enable
    )
    _destination_call(
        merchant,
        installation,
        env,
        lambda rt, owner, e: notifications.update_destination(
            rt, owner, e, destination_id, data
        ).as_json(),
    )


@destinations_app.command("remove")
@guarded
def destinations_remove(
    env: EnvOpt,
    destination_id: DestinationArg,
    merchant: OwnerOpt = None,
    installation: InstallationOpt = False,
) -> None:
    """Remove a destination (its pending deliveries go with it)."""
    from merchant_backend.services import notifications

    def remove(rt: Runtime, owner: str | None, e: Env) -> dict[str, Any]:
        notifications.delete_destination(rt, owner, e, destination_id)
        return {"id": destination_id, "deleted": True}

    _destination_call(merchant, installation, env, remove)


@destinations_app.command("rotate-secret")
@guarded
def destinations_rotate_secret(
    env: EnvOpt,
    destination_id: DestinationArg,
    merchant: OwnerOpt = None,
    installation: InstallationOpt = False,
) -> None:
    """A new signing secret, in force at once; printed once."""
    from merchant_backend.services import notifications

    _destination_call(
        merchant,
        installation,
        env,
        lambda rt, owner, e: notifications.rotate_secret(rt, owner, e, destination_id).as_json(),
    )


@destinations_app.command("test")
@guarded
def destinations_test(
    env: EnvOpt,
    destination_id: DestinationArg,
    merchant: OwnerOpt = None,
    installation: InstallationOpt = False,
) -> None:
    """Send a signed test message now and print how it went (exit 1 if not delivered)."""
    from merchant_backend.services import notifications

    e = _env(env)
    with runtime() as rt:
        owner = _owner(rt, merchant, installation)
        result = notifications.send_test(rt, owner, e, destination_id)
    out(result.as_json())
    if result.outcome not in ("delivered", "queued"):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
