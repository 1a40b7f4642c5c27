"""What ``merchant-backend config`` shows: every setting in effect, where it came from, no secret.

Each setting is named by its environment variable, with its value and its source
(``environment``, ``config file`` or ``default``). Secrets are never shown: the admin token is
masked like a Stripe key (its last four characters), the master key only as the ids of its
keys, and any URL (the database's, the rate-limit storage's) without its password. A few
settings carry a note where the value alone misleads: the SQLite file a relative URL points
at, whether the key file is in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from merchant_backend.crypto import MasterKeyError, key_id, mask, parse_keys
from merchant_backend.settings import ConfigFile, Settings, origin, variable


@dataclass(frozen=True)
class ShownSetting:
    name: str
    value: Any
    source: str
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "from": self.source}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class ConfigReport:
    config_file: ConfigFile
    settings: tuple[ShownSetting, ...]

    def as_json(self) -> dict[str, Any]:
        found = self.config_file
        return {
            "config_file": {
                "path": None if found.path is None else str(found.path),
                "exists": found.exists,
                "chosen_by": found.chosen_by,
            },
            "settings": {s.name: s.as_json() for s in self.settings},
        }


def master_key_summary(value: str) -> str:
    """The master key as the ids of its keys: enough to tell two configurations apart."""
    try:
        keys = parse_keys(value)
    except MasterKeyError as exc:
        return f"set, but not usable: {exc}"
    ids = ", ".join(key_id(k) for k in keys)
    if len(keys) == 1:
        return f"1 key (id {ids})"
    return f"{len(keys)} keys (ids {ids}; the first encrypts)"


def without_password(value: str) -> str:
    """A URL-shaped value with its password replaced by ``***``; anything else unchanged."""
    parts = urlsplit(value)
    if "://" not in value or parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def database_summary(url: str) -> tuple[str, str | None]:
    """The URL without its password, and for SQLite the file it names."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url, "not a database URL SQLAlchemy understands"
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return shown, f"the file {Path(str(parsed.database)).absolute()}"
    return shown, None


def _shown(field: str, settings: Settings, found: ConfigFile) -> ShownSetting:
    value: Any = getattr(settings, field)
    source = origin(field, found)
    note: str | None = None
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        value = master_key_summary(secret) if field == "master_key" else mask(secret)
    elif field == "database_url":
        value, note = database_summary(value)
    elif field == "master_key_file":
        if settings.master_key is not None:
            note = "not used: MERCHANT_BACKEND_MASTER_KEY is set"
        elif Path(value).exists():
            note = f"the file {Path(value).absolute()}; back it up with the database"
        else:
            note = f"{Path(value).absolute()} does not exist yet: serve creates it"
    elif field == "master_key" and value is None:
        note = "not set: the key file (MERCHANT_BACKEND_MASTER_KEY_FILE) holds the key"
    elif field == "admin_token" and value is None:
        note = "the admin API and admin pages are off"
    elif isinstance(value, str):
        value = without_password(value)  # e.g. redis://:password@host for the rate limits
    return ShownSetting(variable(field), value, source, note)


def report(settings: Settings, found: ConfigFile) -> ConfigReport:
    shown = tuple(_shown(field, settings, found) for field in Settings.model_fields)
    return ConfigReport(found, shown)
