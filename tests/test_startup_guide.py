"""What serve tells a person once it is up: the address, how to get the first merchant, the
admin API's state, and where the master key is and that it must be backed up with the
database. The text as a pure function of the facts."""

from __future__ import annotations

from dataclasses import replace

from merchant_backend.startup_guide import Facts, text

FRESH = Facts(
    url="http://127.0.0.1:8000",
    public_url="http://127.0.0.1:8000",
    settings_from="environment and defaults (no ./merchant-backend.env)",
    database="/srv/shop/merchant-backend.db",
    key_file="/srv/shop/merchant-backend.key",
    key_created=True,
    admin_token_set=False,
    merchants=0,
    cli=".venv/bin/merchant-backend",
)


def test_a_fresh_install_says_what_to_do_next() -> None:
    shown = text(FRESH)
    first = shown.splitlines()[0]
    assert first == "merchant-backend is up: open http://127.0.0.1:8000"
    assert "/srv/shop/merchant-backend.key (created just now)" in shown
    assert "back it up together" in shown and "with the database" in shown
    assert '.venv/bin/merchant-backend merchants create --name "Your shop"' in shown
    assert "sign in at http://127.0.0.1:8000/sign-in" in shown
    assert "The admin API is off: set MERCHANT_BACKEND_ADMIN_TOKEN" in shown
    assert "live mode needs a public https:// address" in shown


def test_later_starts_and_an_admin_token() -> None:
    shown = text(
        replace(
            FRESH,
            key_created=False,
            admin_token_set=True,
            merchants=3,
            public_url="https://shop.example",
        )
    )
    assert "created just now" not in shown
    assert "No merchant yet" not in shown and "3 merchant(s)" in shown
    assert "The admin API is on" in shown
    assert "Webhook URLs for Stripe start with https://shop.example" in shown
    assert "live mode needs" not in shown


def test_a_key_from_the_environment_names_no_file() -> None:
    shown = text(replace(FRESH, key_file=None, key_created=False))
    assert "from MERCHANT_BACKEND_MASTER_KEY" in shown
    assert ".key" not in shown


def test_the_same_facts_as_a_log_line() -> None:
    logged = FRESH.as_log()
    assert logged["url"] == FRESH.url
    assert logged["master_key_file"] == FRESH.key_file and logged["master_key_created"] is True
    assert logged["admin_api"] == "off" and logged["merchants"] == 0
