"""``config`` and ``migrate``: the settings an installation runs with, and its schema."""

from __future__ import annotations

from merchant_backend import config_report
from merchant_backend import settings as settings_module
from merchant_backend.cli.common import runtime
from merchant_backend.cli.errors import guarded
from merchant_backend.cli.output import out
from merchant_backend.services import database


@guarded
def config() -> None:
    """Print the settings in effect and where each came from; secrets masked.

    Each setting comes from the environment, else the config file (MERCHANT_BACKEND_CONFIG,
    default ./merchant-backend.env), else its default.
    """
    settings, found = settings_module.load()
    out(config_report.report(settings, found).as_json())


@guarded
def migrate() -> None:
    """Create or upgrade the database schema."""
    with runtime() as rt:
        database.migrate(rt)
        out({"migrated": True, "database": rt.engine.url.render_as_string(hide_password=True)})
