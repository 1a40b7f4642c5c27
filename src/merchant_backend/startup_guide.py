"""What ``serve`` tells a person once the service is up. Pure: the caller gathers the facts.

A new operator ran ``make serve`` and saw JSON log lines only: no address to open, no word on
how to get a first merchant, nothing about the master key just generated next to the database
(which must be backed up with it). This says those things, in the order a person needs them.
At a terminal it is printed as text; otherwise the same facts go into one log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Facts:
    url: str  # where this process listens, as a browser opens it
    public_url: str  # what Stripe is told (webhook URLs)
    settings_from: str  # the config file read, or that none was
    database: str  # the URL without password, or the SQLite file
    key_file: str | None  # the master key file, None when the key comes from the environment
    key_created: bool  # the key file was created by this start
    admin_token_set: bool
    merchants: int
    cli: str = "merchant-backend"  # how to call the CLI from where the person is

    def as_log(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "public_url": self.public_url,
            "settings_from": self.settings_from,
            "database": self.database,
            "master_key_file": self.key_file,
            "master_key_created": self.key_created,
            "admin_api": "on" if self.admin_token_set else "off",
            "merchants": self.merchants,
        }


def text(f: Facts) -> str:
    lines = [
        f"merchant-backend is up: open {f.url}",
        "",
        f"  settings    {f.settings_from}",
        f"  database    {f.database}",
    ]
    if f.key_file is not None:
        created = " (created just now)" if f.key_created else ""
        lines += [
            f"  master key  {f.key_file}{created}",
            "              It encrypts the Stripe secrets in the database: back it up together",
            "              with the database, stored apart from it. One without the other",
            "              cannot be read.",
        ]
    else:
        lines += [
            "  master key  from MERCHANT_BACKEND_MASTER_KEY",
            "              Keep a copy with the database backups, stored apart from them.",
        ]
    lines.append("")
    if f.merchants == 0:
        lines += [
            "No merchant yet. Create the first one (it prints the merchant's API token once):",
            f'  {f.cli} merchants create --name "Your shop"',
            f"then sign in at {f.url.rstrip('/')}/sign-in with that token.",
        ]
    else:
        lines.append(
            f"{f.merchants} merchant(s). Sign in at {f.url.rstrip('/')}/sign-in with a "
            "merchant's API token."
        )
    if f.admin_token_set:
        lines.append(
            "The admin API is on: the admin token (MERCHANT_BACKEND_ADMIN_TOKEN) signs in to "
            "the merchant list and creates merchants (POST /api/v1/merchants)."
        )
    else:
        lines.append(
            "The admin API is off: set MERCHANT_BACKEND_ADMIN_TOKEN (32 characters or more, e.g. "
            "in ./merchant-backend.env) to create merchants over the API or the web pages."
        )
    if f.public_url.rstrip("/") != f.url.rstrip("/"):
        lines.append(
            f"Webhook URLs for Stripe start with {f.public_url.rstrip('/')} "
            "(MERCHANT_BACKEND_PUBLIC_URL), not this address: set it if that is wrong."
        )
    elif not f.public_url.startswith("https://"):
        lines.append(
            "Stripe's live mode needs a public https:// address for webhooks: set "
            "MERCHANT_BACKEND_PUBLIC_URL when this service has one."
        )
    lines.append("Stop with Ctrl-C. 'merchant-backend config' shows every setting.")
    return "\n".join(lines) + "\n"
