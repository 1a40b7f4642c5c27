"""How the command line talks to people and to scripts.

Errors: at a terminal (stderr is a TTY) an error is one plain sentence, ``error: …``, with the
option it is about; for a script (stderr is not a terminal, or ``--json`` is given) it is the
API's error JSON on one line, as before. The exit code is the same either way (0 ok, 2 bad
input, 1 other failure). A data set rejected for several fields lists each on its own line,
so a person fixes them all at once.

Data: a command's answer is JSON on stdout (``out``); ``fail`` writes the error and ends the
command with its exit code. The help is ``helptext.py``'s.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

import typer

# The data set's field names (the API's) as the options ``stripe set`` takes them.
OPTION_OF_FIELD = {
    "account_id": "--account-id",
    "publishable_key": "--publishable-key",
    "secret_key": "--secret-key",
    "webhook_signing_secret": "--signing-secret",
    "signing_secret": "--signing-secret",
    "old_valid_for": "--old-valid-for",
    "env": "--env",
    "merchant": "--merchant",
    "name": "--name",
    "since": "--since",
}


@dataclass(frozen=True)
class CliError:
    code: str
    message: str
    field: str | None = None
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.errors:
            body["errors"] = self.errors
        return {"error": body}


def option_name(field_name: str | None) -> str | None:
    """How a person types the field an error is about (``account_id`` → ``--account-id``)."""
    if not field_name:
        return None
    if field_name.startswith("-") or field_name.isupper():
        return field_name  # already an option, or an environment variable
    return OPTION_OF_FIELD.get(field_name, field_name)


def _sentence(message: str) -> str:
    message = message.strip()
    return message if message.endswith((".", "?", "!", ")")) else message + "."


def plain(error: CliError) -> str:
    """The error for a person: one sentence, or one line per field when several are wrong."""
    if len(error.errors) > 1:
        lines = [f"error: {len(error.errors)} problems, nothing was changed:"]
        for item in error.errors:
            where = option_name(item.get("field"))
            text = _sentence(str(item.get("message")))
            lines.append(f"  {where}: {text}" if where else f"  {text}")
        return "\n".join(lines) + "\n"
    where = option_name(error.field)
    suffix = f" ({where})" if where and where not in error.message else ""
    return f"error: {_sentence(error.message)}{suffix}\n"


def wants_json(json_flag: bool, stream: TextIO | None = None) -> bool:
    """JSON when asked for, or when no person reads the stream."""
    if json_flag:
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: a script's
        return True


def write(error: CliError, json_flag: bool, stream: TextIO | None = None) -> None:
    stream = sys.stderr if stream is None else stream
    if wants_json(json_flag, stream):
        stream.write(json.dumps(error.as_json(), ensure_ascii=False) + "\n")
    else:
        stream.write(plain(error))
    stream.flush()


# ---- what every command writes ----------------------------------------------------------------

# Set by ``--json`` anywhere on the command line (see ``usage.JsonUsageErrors.main``).
json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors", default=False)


def write_error(
    error_code: str,
    message: str,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    error = CliError(error_code, message, field, errors or [])
    write(error, json_errors.get())


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
