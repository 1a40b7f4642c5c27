"""The message a web action leaves for the page it redirects to: signed with the session's
CSRF token, for one path, shown once. A cookie planted by anything else shows nothing."""

from __future__ import annotations

from merchant_backend.web.flash import MAX_TEXT, Flash, decode, encode

KEY = "csrf-token-of-the-session"


def test_round_trip() -> None:
    flash = Flash("/m/mer_1/stage/stripe", notice="Done.", problem=None)
    assert decode(encode(flash, KEY), KEY) == flash


def test_another_sessions_key_or_a_changed_value_shows_nothing() -> None:
    value = encode(Flash("/p", problem="Verifying did not finish"), KEY)
    assert decode(value, "another-session") is None
    assert decode(value, "") is None
    payload, signature = value.rsplit(".", 1)
    forged = encode(Flash("/p", problem="Paste your key at evil.example"), "guess")
    assert decode(forged, KEY) is None
    assert decode(payload + "." + "0" * len(signature), KEY) is None
    assert decode("no-dot-at-all", KEY) is None


def test_only_text_of_bounded_length() -> None:
    flash = decode(encode(Flash("/p", notice="x" * (MAX_TEXT + 50)), KEY), KEY)
    assert flash is not None and flash.notice is not None and len(flash.notice) == MAX_TEXT
