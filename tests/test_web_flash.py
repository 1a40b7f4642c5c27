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


def test_the_longest_message_still_fits_a_cookie_and_keeps_the_sentence_before_the_facts() -> None:
    """Browsers drop a cookie past 4 KB, and the message with it: a German problem and its
    English facts, each at the bound, are shortened to fit, the facts first."""
    from merchant_backend.web.flash import MAX_VALUE, fitted

    problem = ("Die Prüfung wurde nicht abgeschlossen: Stripe war nicht erreichbar. " * 30)[
        :MAX_TEXT
    ]
    detail = "could not reach Stripe at https://api.stripe.com (tried 3 times) " * 30
    flash = Flash("/m/mer_1/stage/stripe", problem=problem, detail=detail[:MAX_TEXT])
    assert len(encode(flash, KEY)) > MAX_VALUE  # the case this is about
    value = fitted(flash, KEY)
    assert len(value) <= MAX_VALUE
    shown = decode(value, KEY)
    assert shown is not None and shown.problem == problem  # the sentence whole
    assert shown.detail is not None and shown.detail.endswith("…")
    # A short message is left as it is.
    short = Flash("/p", problem="Verifying did not finish", detail="HTTP 500")
    assert fitted(short, KEY) == encode(short, KEY)
