"""``merchants``: create and list merchants, and take a merchant's access back or give it again."""

from __future__ import annotations

from typing import Annotated

import typer

from merchant_backend.cli.common import MerchantOpt, runtime
from merchant_backend.cli.errors import BadInput, guarded
from merchant_backend.cli.output import out
from merchant_backend.services import merchant_access, merchants

merchants_app = typer.Typer(help="Create and list merchants.", no_args_is_help=True)


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
