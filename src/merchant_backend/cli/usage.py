"""The command line as a whole: ``--json`` may stand anywhere, and Click's usage errors (a
missing option, a malformed number) are written like every other error (``output``), with
exit 2."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from merchant_backend.cli.helptext import readable_help
from merchant_backend.cli.output import json_errors, wants_json, write_error

JSON_FLAG = "--json"


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
    help readable (helptext.readable_help)."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        readable_help(self)
        args, json_flag = _take_json_flag(list(sys.argv[1:] if args is None else args))
        json_errors.set(json_flag)
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
                if code == 2 and ctx is not None and not wants_json(json_errors.get()):
                    message += f" See '{ctx.command_path} --help'."
                write_error(kind, message, field)
        except typer.Abort:
            write_error("aborted", "aborted")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)
