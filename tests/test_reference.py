"""docs/reference.md cannot drift from the code.

Every path and method of the app's OpenAPI document has a row in the reference's route tables
and every row there is a route the app serves; every CLI command (read from the Typer app) has a
section that names each of its options; every setting and each of the 15 events is listed. When
one of these fails, add what is missing to docs/reference.md (or remove what no longer exists).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from merchant_backend.cli import app as cli_app
from merchant_backend.settings import CONFIG_VARIABLE, Settings
from merchant_backend.vocabulary import HANDLED_EVENTS

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
TEXT = REFERENCE.read_text()

ROW = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE)`\s*\|\s*`(/[^`]*)`\s*\|", re.MULTILINE)
HEADING = re.compile(r"^### `merchant-backend ([^`]+)`\s*$", re.MULTILINE)


def documented_routes() -> set[tuple[str, str]]:
    return {(m, p) for m, p in ROW.findall(TEXT)}


def openapi_routes(app: Any) -> set[tuple[str, str]]:
    doc = app.openapi()
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}


def served_routes(app: Any) -> set[tuple[str, str]]:
    """The OpenAPI document's routes and the app's own routes outside it (webhook, docs)."""
    out = openapi_routes(app)
    for route in app.routes:  # included routers and mounts have no methods of their own
        methods = getattr(route, "methods", None) or ()
        out |= {(m, route.path) for m in methods if m != "HEAD"}
    return out


def test_every_openapi_route_is_in_the_reference(app: Any) -> None:
    missing = sorted(openapi_routes(app) - documented_routes())
    assert not missing, (
        f"routes missing from {REFERENCE.name}: add a row "
        "`| `METHOD` | `/path` | who | answers |` to its route table for each of "
        f"{missing}"
    )


def test_every_route_in_the_reference_is_served(app: Any) -> None:
    unknown = sorted(documented_routes() - served_routes(app))
    assert not unknown, f"{REFERENCE.name} lists routes the app does not serve: {unknown}"


def test_routes_outside_openapi_are_only_the_documented_few(app: Any) -> None:
    outside = documented_routes() - openapi_routes(app)
    assert outside == {
        ("POST", "/webhooks/stripe/{merchant_id}/{env}"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }


# Typer builds on its own copy of click, so its classes are told apart by what they have.
def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found |= _commands(command, f"{full} ")
        else:
            found[full] = command
    return found


def cli_commands() -> dict[str, Any]:
    return _commands(typer.main.get_command(cli_app))


def sections() -> dict[str, str]:
    """``### `merchant-backend X``` heading → its text, up to the next heading."""
    marks = list(HEADING.finditer(TEXT))
    out = {}
    for i, mark in enumerate(marks):
        ends = [marks[i + 1].start()] if i + 1 < len(marks) else []
        chapter_end = TEXT.find("\n## ", mark.end())
        ends += [chapter_end] if chapter_end != -1 else [len(TEXT)]
        out[mark.group(1)] = TEXT[mark.end() : min(ends)]
    return out


def test_every_cli_command_has_a_section_and_every_section_a_command() -> None:
    commands = set(cli_commands())
    documented = set(sections())
    assert commands - documented == set(), (
        f"CLI commands missing from {REFERENCE.name}: add a section "
        "'### `merchant-backend <command>`' naming every option for each of "
        f"{sorted(commands - documented)}"
    )
    assert documented - commands == set(), f"documented but not commands: {documented - commands}"


def test_each_section_names_every_option_and_argument() -> None:
    text = sections()
    for name, command in cli_commands().items():
        for param in command.params:
            if param.param_type_name == "option":
                if param.hidden or "--help" in param.opts:
                    continue
                long = [o for o in param.opts if o.startswith("--")]
                assert any(o in text[name] for o in long), f"{name}: {long} is not documented"
            else:
                label = (param.name or "").upper()
                assert label in text[name], f"{name}: argument {label} is not documented"


def test_every_setting_is_listed() -> None:
    names = {f"MERCHANT_BACKEND_{field.upper()}" for field in Settings.model_fields}
    names.add(CONFIG_VARIABLE)
    table = set(re.findall(r"^\|\s*`(MERCHANT_BACKEND_[A-Z0-9_]+)`", TEXT, re.MULTILINE))
    assert names - table == set(), f"settings missing from the table: {sorted(names - table)}"
    assert table - names == set(), f"settings in the table that do not exist: {table - names}"


def test_the_15_events_are_listed() -> None:
    listed = re.findall(r"^\|\s*`([a-z_]+(?:\.[a-z_]+)+)`\s*\|", TEXT, re.MULTILINE)
    assert sorted(listed) == sorted(HANDLED_EVENTS)


def test_the_readme_links_the_reference_and_nothing_outside_the_repository() -> None:
    readme = (REFERENCE.parents[1] / "README.md").read_text()
    assert "(docs/reference.md)" in readme
    targets = re.findall(r"\]\(([^)#]+)", readme)
    outside = [t for t in targets if t.startswith("..") or t.startswith("/")]
    assert not outside, f"README links outside the repository: {outside}"
    for target in targets:
        if "://" not in target:
            assert (REFERENCE.parents[1] / target).exists(), target
