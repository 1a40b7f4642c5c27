"""The ``merchant-backend`` command (see CONTRACT.md).

Data goes to stdout as JSON. Errors go to stderr: one plain sentence when a person is at the
terminal, the API's error JSON when stderr is not a terminal or ``--json`` is given
(``output.py``). Exit codes: 0 ok, 2 bad input, 1 any other failure (``errors.guarded``).
Secrets are read from stdin ('-') or environment variables so they never show in the process
list or shell history.

One module per command group; this one puts them together. The order below is the order the
help lists them in: the commands, then the groups.
"""

from __future__ import annotations

from typing import Annotated

import typer

from merchant_backend.cli import (
    datasets,
    destinations,
    events,
    installation,
    keys,
    merchants,
    serve,
)
from merchant_backend.cli.events import parse_since as parse_since
from merchant_backend.cli.serve import uvicorn_options as uvicorn_options
from merchant_backend.cli.usage import JSON_FLAG, JsonUsageErrors
from merchant_backend.cli.usage import _take_json_flag as _take_json_flag

app = typer.Typer(
    name="merchant-backend",
    cls=JsonUsageErrors,
    help="Connect merchants' Stripe accounts and keep their payment state true.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.command("config")(installation.config)
app.command("migrate")(installation.migrate)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.command("reconcile")(events.reconcile)
app.command("rotate-master-key")(keys.rotate_master_key)
app.add_typer(merchants.merchants_app, name="merchants")
app.add_typer(datasets.stripe_app, name="stripe")
app.add_typer(events.events_app, name="events")
app.add_typer(destinations.destinations_app, name="destinations")


def main() -> None:
    app()
