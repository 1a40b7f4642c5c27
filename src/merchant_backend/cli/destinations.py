"""``destinations``: where a merchant's changes are sent (outbound notifications,
docs/outbound.md): add, list, update, remove, rotate the secret, send a test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from merchant_backend.cli.common import EnvOpt, env_of, require_merchant, runtime
from merchant_backend.cli.errors import BadInput, guarded
from merchant_backend.cli.output import out
from merchant_backend.runtime import Runtime
from merchant_backend.validation import Env

destinations_app = typer.Typer(
    help="Where a merchant's changes are sent (signed notifications).", no_args_is_help=True
)

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
        require_merchant(rt, merchant)
    return merchant


def _types(value: str | None) -> list[str] | None:
    return None if value is None else [t.strip() for t in value.split(",") if t.strip()]


def _destination_call(
    merchant: str | None,
    installation: bool,
    env: str,
    action: Callable[[Runtime, str | None, Env], Any],
) -> None:
    e = env_of(env)
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

    e = env_of(env)
    with runtime() as rt:
        owner = _owner(rt, merchant, installation)
        result = notifications.send_test(rt, owner, e, destination_id)
    out(result.as_json())
    if result.outcome not in ("delivered", "queued"):
        raise typer.Exit(1)
