"""What the commands share: the runtime a command runs with, the ``--merchant`` and ``--env``
options, and secrets read from standard input ('-') so they never show in the process list
or the shell's history."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from merchant_backend import logs
from merchant_backend import settings as settings_module
from merchant_backend.cli.errors import BadInput
from merchant_backend.errors import NotFound
from merchant_backend.runtime import Runtime
from merchant_backend.services import merchants
from merchant_backend.validation import Env, validate_env

MerchantOpt = Annotated[str, typer.Option("--merchant", help="merchant id (mer_…)")]
EnvOpt = Annotated[str, typer.Option("--env", help="stage or live")]


@contextmanager
def runtime() -> Iterator[Runtime]:
    settings, _found = settings_module.load()
    logs.setup(settings.log_level, settings.log_json)
    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


def read_secret(value: str | None, stdin_lines: Iterator[str]) -> str | None:
    if value == "-":
        try:
            return next(stdin_lines).strip()
        except StopIteration:
            raise BadInput("expected the secret on standard input, found nothing") from None
    return value


def stdin_lines() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def env_of(env: str) -> Env:
    return validate_env(env)


def require_merchant(rt: Runtime, merchant_id: str) -> None:
    if not merchants.merchant_exists(rt, merchant_id):
        raise NotFound(f"no merchant {merchant_id}: see 'merchant-backend merchants list'")
