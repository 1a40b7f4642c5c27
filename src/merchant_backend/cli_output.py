"""How the command line talks to people and to scripts.

Errors: at a terminal (stderr is a TTY) an error is one plain sentence, ``error: …``, with the
option it is about; for a script (stderr is not a terminal, or ``--json`` is given) it is the
API's error JSON on one line, as before. The exit code is the same either way (0 ok, 2 bad
input, 1 other failure). A data set rejected for several fields lists each on its own line,
so a person fixes them all at once.

Help: typer labels every option with its Python type (``--help <bool>``, ``--merchant
<str>``). ``readable_help`` gives options a metavar that says what to type (``ID``, ``PORT``)
and flags none, before the help is drawn.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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


# ---- help ------------------------------------------------------------------------------------


# What to type, where the option's name alone does not say it.
METAVAR = {
    "--merchant": "ID",
    "--env": "stage|live",
    "--account-id": "acct_…",
    "--publishable-key": "pk_…",
    "--secret-key": "sk_…|-",
    "--signing-secret": "whsec_…|-",
    "--old-valid-for": "SECONDS",
    "--since": "WHEN",
    "--older-than": "AGE",
}


def reflow(text: str | None) -> str | None:
    """A docstring's paragraphs as single lines: the help is wrapped to the terminal, and the
    line breaks of the source would otherwise cut its lines in the middle."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if _LIST.search(p) else " ".join(p.split()) for p in paragraphs)


# A paragraph written as a list keeps its lines.
_LIST = re.compile(r"^\s*(?:[-*]|\d+[.)])\s", re.MULTILINE)


def _no_type_label(ctx: Any) -> None:
    return None


def _tidy(param: Any) -> None:
    if isinstance(param, TyperOption):
        if param.is_flag:
            param.metavar = ""
        elif param.metavar is None and param.name:
            known = [METAVAR[o] for o in param.opts if o in METAVAR]
            param.metavar = known[0] if known else param.name.upper()
    elif isinstance(param, TyperArgument):
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        # An argument's type label is drawn whatever its metavar; its name says enough.
        param.display_type_rich = _no_type_label  # type: ignore[method-assign]


def readable_help(command: TyperCommand | TyperGroup) -> None:
    """Give every option of ``command`` and its subcommands a label a person understands, and
    its help text paragraphs that the terminal wraps."""
    command.help = reflow(command.help)
    for param in command.params:
        _tidy(param)
    help_option = command.get_help_option(command.context_class(command))
    if help_option is not None:
        _tidy(help_option)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                readable_help(sub)
