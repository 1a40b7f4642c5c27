"""Configuration: ``MERCHANT_BACKEND_*`` environment variables, then an optional config file.

``load()`` is how a process gets its settings (``serve``, ``worker``, every CLI command): the
environment wins, then the ``.env``-style file named by ``MERCHANT_BACKEND_CONFIG`` (default
``./merchant-backend.env``; set it empty to read no file), then the defaults below. So a
``serve`` and a CLI in another shell read the same file and agree. The file is parsed by
python-dotenv (through pydantic-settings): ``NAME=value`` lines, ``#`` comments, quotes,
``export``. A name in it that is not a setting is refused with the nearest one, since a typo
would otherwise silently fall back to a default; a file holding a secret (the master key, the
admin token) must not be readable by other users, like the key file.

``Settings(...)`` alone reads the environment only, never a file (tests build it that way).
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import limits
from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "MERCHANT_BACKEND_"
CONFIG_VARIABLE = "MERCHANT_BACKEND_CONFIG"
DEFAULT_CONFIG_FILE = "./merchant-backend.env"
# The admin token opens every merchant: `serve` refuses a shorter one.
ADMIN_TOKEN_MIN_LENGTH = 32

# ``serve --no-worker`` tells the app factory (``merchant_backend.asgi``) through the environment:
# uvicorn builds the app in each server process it starts, which inherit the environment.
SERVE_NO_WORKER_ENV = "MERCHANT_BACKEND_SERVE_NO_WORKER"
SERVE_NO_DISPATCHER_ENV = "MERCHANT_BACKEND_SERVE_NO_DISPATCHER"


class Settings(BaseSettings):
    # An empty variable (``NAME=``) counts as unset, in the environment and in the file.
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", env_ignore_empty=True)

    database_url: str = "sqlite:///./merchant-backend.db"
    # One or more base64url keys, comma separated; the first encrypts, all decrypt.
    master_key: SecretStr | None = None
    master_key_file: str = "./merchant-backend.key"
    admin_token: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    stripe_api_base: str | None = None
    webhook_tolerance: int = Field(default=300, ge=1)
    webhook_max_body: int = Field(default=1024 * 1024, ge=1024)
    # How long a webhook waits for its batch to commit before answering 503.
    ingest_commit_timeout: float = Field(default=10.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # At most 5,000: a batch's claim, lease and marks bind a parameter or four per event, and
    # SQLite takes 32,766 at most in one statement (PostgreSQL 65,535).
    worker_batch_size: int = Field(default=500, ge=1, le=5000)
    worker_lease_seconds: float = Field(default=60.0, gt=0)
    worker_poll_interval: float = Field(default=0.2, gt=0)
    # 15 tries, backoff 2 s doubling up to 1 h (with jitter): 2–4 h before an event is dead,
    # so a bug fixed within the working day needs no manual replay.
    worker_max_attempts: int = Field(default=15, ge=1)
    worker_backoff_base: float = Field(default=2.0, gt=0)
    worker_backoff_max: float = Field(default=3600.0, gt=0)

    stripe_timeout: float = Field(default=20.0, gt=0)
    stripe_max_network_retries: int = Field(default=2, ge=0)
    # Seconds between automatic reconcile runs inside `serve`; 0 turns it off.
    reconcile_interval: float = Field(default=0.0, ge=0)
    # Bulkheads: requests that wait on Stripe, at once, per merchant and in all (per process);
    # past either, 429 at once. Each such request gets this many seconds for all its Stripe
    # calls together (every try, every retry), then 504.
    stripe_concurrency: int = Field(default=16, ge=1)
    stripe_concurrency_per_merchant: int = Field(default=4, ge=1)
    stripe_request_budget: float = Field(default=30.0, gt=0)

    # Failed authentications allowed per client address and per target (a merchant, the
    # admin, the sign-in form) before 429; `limits` notation. Where the counts live:
    # memory:// (one process) or redis://host:port (several processes share them).
    auth_failures_per_address: str = "20/minute"
    auth_failures_per_target: str = "100/minute"
    rate_limit_storage: str = "memory://"

    # Outbound notifications (issue 10). The first retry after RETRY_BASE seconds, doubling
    # (with jitter, each delay at most 6 h) for RETRY_WINDOW seconds, then the delivery is failed.
    outbound_retry_base: float = Field(default=5.0, gt=0)
    outbound_retry_window: float = Field(default=3 * 86400.0, gt=0)
    # A destination whose every delivery failed for this long is disabled.
    outbound_disable_after: float = Field(default=5 * 86400.0, gt=0)
    outbound_timeout: float = Field(default=10.0, gt=0)
    # Deliveries in flight in one process, in all and per destination.
    outbound_concurrency: int = Field(default=16, ge=1)
    outbound_destination_concurrency: int = Field(default=4, ge=1)
    # How long a claimed delivery stays leased (a dispatcher that dies gives it back then).
    outbound_lease_seconds: float = Field(default=60.0, gt=0)
    outbound_poll_interval: float = Field(default=0.5, gt=0)
    # Let destinations point at loopback, private and link-local addresses (never metadata).
    outbound_allow_private: bool = False

    # Days after which applied and ignored events' raw bodies are removed (store/retention.py);
    # 0 keeps them for ever. `serve` prunes every EVENT_PRUNE_INTERVAL seconds.
    event_retention_days: int = Field(default=90, ge=0)
    event_prune_interval: float = Field(default=3600.0, gt=0)

    log_level: str = "INFO"
    # JSON lines, or text for a person; unset: text when stderr is a terminal, else JSON.
    log_json: bool | None = None

    @field_validator("auth_failures_per_address", "auth_failures_per_target")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate: write it like '20/minute' or '100 per hour'"
            ) from None
        return value

    def admin_token_problem(self) -> str | None:
        """Why ``serve`` must not start with this admin token (never quoting it), or None."""
        if self.admin_token is None:
            return None
        length = len(self.admin_token.get_secret_value())
        if length >= ADMIN_TOKEN_MIN_LENGTH:
            return None
        return (
            f"MERCHANT_BACKEND_ADMIN_TOKEN has {length} characters; it opens every merchant, so "
            f"it needs at least {ADMIN_TOKEN_MIN_LENGTH}. Make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


SECRET_SETTINGS = tuple(
    name for name, info in Settings.model_fields.items() if info.annotation == SecretStr | None
)


def variable(field: str) -> str:
    """The environment variable of a setting: ``public_url`` → ``MERCHANT_BACKEND_PUBLIC_URL``."""
    return PREFIX + field.upper()


class ConfigError(Exception):
    """The config file or a setting cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class ConfigFile:
    """Which config file a process reads, and why that one."""

    path: Path | None  # None: MERCHANT_BACKEND_CONFIG is set empty, no file is read
    chosen_by: str  # "MERCHANT_BACKEND_CONFIG" or "default"
    values: Mapping[str, str]  # what the file sets, names upper-cased, empty values left out

    @property
    def exists(self) -> bool:
        return self.path is not None and self.path.is_file()

    def describe(self) -> str:
        if self.path is None:
            return f"no config file ({CONFIG_VARIABLE} is set empty)"
        return str(self.path)


def config_file(environ: Mapping[str, str] | None = None) -> ConfigFile:
    """Find and read the config file; a missing default file is no error, a named one is."""
    environ = os.environ if environ is None else environ
    named = _lookup(environ, CONFIG_VARIABLE)
    if named is not None and not named.strip():
        return ConfigFile(None, CONFIG_VARIABLE, {})
    chosen_by = CONFIG_VARIABLE if named is not None else "default"
    path = Path(named if named is not None else DEFAULT_CONFIG_FILE).expanduser().absolute()
    if not path.exists():
        if named is not None:
            raise ConfigError(
                f"the config file {path} named by {CONFIG_VARIABLE} does not exist: create it, "
                f"or unset {CONFIG_VARIABLE} to read {DEFAULT_CONFIG_FILE} when it exists"
            )
        return ConfigFile(path, chosen_by, {})
    if not path.is_file():
        raise ConfigError(f"the config file {path} is not a file")
    try:
        raw = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    values = {k.upper(): v for k, v in raw.items() if v}
    _refuse_unknown(path, list(raw))
    _refuse_readable_secrets(path, values)
    return ConfigFile(path, chosen_by, values)


def _lookup(environ: Mapping[str, str], name: str) -> str | None:
    """A variable as pydantic-settings finds it: the name in any case."""
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def _refuse_unknown(path: Path, names: list[str]) -> None:
    known = [variable(f) for f in Settings.model_fields]
    for name in names:
        upper = name.upper()
        if upper in known:
            continue
        if PREFIX + upper in known:
            near = [PREFIX + upper]
        else:
            near = difflib.get_close_matches(upper, known, n=1)
        hint = (
            f": did you mean {near[0]}?"
            if near
            else " (the settings are listed in the README, under Configuration)"
        )
        raise ConfigError(f"{path} sets {name}, which is not a setting{hint}")


def _refuse_readable_secrets(path: Path, values: Mapping[str, str]) -> None:
    held = [variable(f) for f in SECRET_SETTINGS if variable(f) in values]
    mode = stat.S_IMODE(path.stat().st_mode)
    if held and mode & 0o077:
        raise ConfigError(
            f"{path} holds {' and '.join(held)} but other users may read it (mode {mode:o}): "
            f"run chmod 600 {path}"
        )


def load() -> tuple[Settings, ConfigFile]:
    """The settings in effect for this process, and the config file they were read with."""
    found = config_file()
    try:
        settings = Settings(_env_file=found.path if found.exists else None)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            name = variable(field)
            where = "the config file" if name in found.values else "the environment"
            if _lookup(os.environ, name):
                where = "the environment"
            problems.append(f"{name} (from {where}): {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
    return settings, found


def origin(field: str, found: ConfigFile, environ: Mapping[str, str] | None = None) -> str:
    """Where a setting's value comes from: "environment", "config file" or "default"."""
    environ = os.environ if environ is None else environ
    name = variable(field)
    if _lookup(environ, name):
        return "environment"
    if found.exists and name in found.values:
        return "config file"
    return "default"
