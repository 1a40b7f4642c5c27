"""``stripe``: a merchant's Stripe data sets (stage and live): store, show, roll the signing
secret, verify against Stripe, provision the webhook endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from merchant_backend.cli.common import (
    EnvOpt,
    MerchantOpt,
    env_of,
    read_secret,
    require_merchant,
    runtime,
    stdin_lines,
)
from merchant_backend.cli.errors import guarded
from merchant_backend.cli.output import out
from merchant_backend.errors import NotFound, UpstreamFailure
from merchant_backend.services import connection
from merchant_backend.services import datasets as data_sets
from merchant_backend.validation import DataSetInput

stripe_app = typer.Typer(
    help="A merchant's Stripe data sets (stage and live).", no_args_is_help=True
)


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
    e = env_of(env)
    lines = stdin_lines()
    data = DataSetInput(
        account_id=account_id,
        publishable_key=publishable_key,
        secret_key=read_secret(secret_key, lines),
        webhook_signing_secret=read_secret(signing_secret, lines),
    )
    with runtime() as rt:
        require_merchant(rt, merchant)
        stored = data_sets.save_data_set(rt, merchant, e, data, partial=True)
        out(stored.as_json(rt.settings.public_url))


@stripe_app.command("show")
@guarded
def stripe_show(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Show a data set, secrets masked, with its health."""
    e = env_of(env)
    with runtime() as rt:
        require_merchant(rt, merchant)
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
    e = env_of(env)
    secret = read_secret(signing_secret, stdin_lines())
    assert secret is not None
    with runtime() as rt:
        require_merchant(rt, merchant)
        stored = data_sets.roll_signing_secret(rt, merchant, e, secret, old_valid_for)
        out(stored.as_json(rt.settings.public_url))


@stripe_app.command("verify")
@guarded
def stripe_verify(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Check the data set against Stripe; prints the report (exit 1 if a check failed)."""
    e = env_of(env)
    with runtime() as rt:
        require_merchant(rt, merchant)
        with _report_of_failure():
            report = connection.verify_data_set(rt, merchant, e)
    out(report.as_json())
    if report.status == "failed":
        raise typer.Exit(1)


@stripe_app.command("provision-webhook")
@guarded
def stripe_provision_webhook(merchant: MerchantOpt, env: EnvOpt) -> None:
    """Create the webhook endpoint with the 15 events and store its signing secret."""
    e = env_of(env)
    with runtime() as rt:
        require_merchant(rt, merchant)
        with _report_of_failure():
            result = connection.provision_webhook(rt, merchant, e)
        out(result.as_json())
