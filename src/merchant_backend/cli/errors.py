"""The domain's errors as the command line's exit codes, mapped once for every command
(``guarded``): 2 for input the caller can fix, 1 for any other failure; never a traceback
with data in it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
import typer

from merchant_backend import logs
from merchant_backend.cli.output import fail
from merchant_backend.crypto import MasterKeyError
from merchant_backend.errors import (
    Conflict,
    InvalidInput,
    NotConfigured,
    NotFound,
    UpstreamFailure,
    UpstreamKind,
)
from merchant_backend.settings import ConfigError


class BadInput(Exception):
    """Input a command refuses itself (an option out of range, a missing secret): exit 2,
    naming the option it is about."""

    def __init__(
        self, message: str, field: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors


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
