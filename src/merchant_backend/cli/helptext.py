"""The help, readable by a person.

typer labels every option with its Python type (``--help <bool>``, ``--merchant <str>``).
``readable_help`` gives options a metavar that says what to type (``ID``, ``PORT``) and flags
none, before the help is drawn, and makes a docstring's paragraphs lines the terminal wraps.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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
