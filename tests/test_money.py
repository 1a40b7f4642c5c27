"""Amounts typed by people, read for the page's locale (issue 12: ``12,50`` EUR was charged as
1,250.00 EUR). The expected minor units here are written by hand, not computed by the module."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merchant_backend import money
from merchant_backend.money import MAX_MINOR, AmountRefused

EUR = money.CURRENCIES["eur"]
JPY = money.CURRENCIES["jpy"]
KWD = money.CURRENCIES["kwd"]
ISK = money.CURRENCIES["isk"]
LOCALES = ("en", "de")


def _read(text: str, code: str, locale: str) -> int | str:
    cur = money.currency(code)
    assert cur is not None
    got = money.parse_amount(text, cur, locale)
    return got if isinstance(got, int) else got.reason


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("text", "code", "locale", "minor"),
    [
        ("12,50", "eur", "de", 1250),
        ("12.50", "eur", "en", 1250),
        ("1.250,00", "eur", "de", 125000),
        ("1,250.00", "eur", "en", 125000),
        ("1.250", "eur", "de", 125000),  # German thousands, no decimals
        ("1,250", "eur", "en", 125000),  # English thousands
        ("12,5", "eur", "de", 1250),
        ("0,99", "eur", "de", 99),
        (" 12,50\u00a0€ ", "eur", "de", 1250),  # what the page itself writes is read back
        ("€12.50", "eur", "en", 1250),
        ("EUR 12.50", "EUR", "en", 1250),
        ("12.50 eur", "eur", "en", 1250),
        ("500", "jpy", "en", 500),
        ("1.250", "jpy", "de", 1250),
        ("1,250", "jpy", "en", 1250),
        ("5,12", "kwd", "de", 5120),  # three decimals: 5.120 KWD
        ("5.12", "kwd", "en", 5120),
        # Three-decimal amounts that read one way in both languages.
        ("0,250", "kwd", "de", 250),  # nobody groups thousands after a lone zero
        ("0.250", "bhd", "en", 250),
        ("00,250", "kwd", "de", 250),
        ("1,25", "kwd", "de", 1250),  # two decimals are never thousands
        ("1.25", "jod", "en", 1250),
        ("1,2", "kwd", "de", 1200),
        ("1.2", "omr", "en", 1200),
        ("1.250,000", "kwd", "de", 1_250_000),  # both marks, in the page's order
        ("1.250,00", "kwd", "de", 1_250_000),
        ("1,250.000", "tnd", "en", 1_250_000),
        ("1,250.00", "kwd", "en", 1_250_000),
        ("1250,000", "kwd", "de", 1_250_000),  # four digits before the mark: no group
        ("1250.000", "kwd", "en", 1_250_000),
        ("1250", "kwd", "de", 1_250_000),
        ("99.999,99", "kwd", "de", 99_999_990),  # the largest, as the page writes it
        ("12.345,67", "kwd", "de", 12_345_670),
        ("1,25\u00a0KWD", "kwd", "de", 1250),  # what the confirmation step writes
        ("KWD\u00a01.25", "kwd", "en", 1250),
        ("5", "isk", "en", 500),  # ISK: whole krónur, two zero decimals in Stripe's amount
        ("999.999,99", "eur", "de", MAX_MINOR),
    ],
)
def test_amounts_are_read_the_way_the_locale_writes_them(
    text: str, code: str, locale: str, minor: int
) -> None:
    assert _read(text, code, locale) == minor


@pytest.mark.parametrize(
    ("text", "code", "locale", "reason"),
    [
        # The bug: the German decimal comma on the English page.
        ("12,50", "eur", "en", "format"),
        ("12.50", "eur", "de", "format"),
        # A decimal mark after a grouping mark of the other kind.
        ("1.250,00", "eur", "en", "format"),
        ("1,250.00", "eur", "de", "format"),
        # One mark and three digits: the other language's thousands.
        ("1,250", "eur", "de", "ambiguous"),
        ("1.250", "eur", "en", "ambiguous"),
        ("1,250", "jpy", "de", "ambiguous"),
        ("1.250", "isk", "en", "ambiguous"),
        # More decimals than the currency has.
        ("12,345", "eur", "de", "ambiguous"),
        ("1.012,345", "eur", "de", "decimals"),
        ("12.3456", "eur", "en", "decimals"),
        ("12,500", "eur", "de", "ambiguous"),
        ("12,5", "jpy", "de", "decimals"),
        ("5.5", "isk", "en", "decimals"),
        ("5,1234", "kwd", "de", "decimals"),
        # Stripe's three-decimal step: the last digit must be 0.
        ("5,125", "kwd", "de", "step"),
        ("5.125", "kwd", "en", "step"),
        ("0.001", "kwd", "en", "step"),
        # Three decimals or the other language's thousands: 1.250 KWD or 1,250 KWD.
        ("1,250", "kwd", "de", "ambiguous"),
        ("12,250", "kwd", "de", "ambiguous"),
        ("125,250", "kwd", "de", "ambiguous"),
        ("1.250", "kwd", "en", "ambiguous"),
        ("5.120", "kwd", "en", "ambiguous"),
        ("12.250", "bhd", "en", "ambiguous"),
        ("125.250", "tnd", "en", "ambiguous"),
        ("01,250", "kwd", "de", "ambiguous"),
        ("1,250\u00a0KWD", "kwd", "de", "ambiguous"),
        # ... and the mirror: the page's thousands, the other language's three decimals.
        ("1.250", "kwd", "de", "ambiguous"),
        ("125.250", "jod", "de", "ambiguous"),
        ("1,250", "kwd", "en", "ambiguous"),
        ("12,250", "omr", "en", "ambiguous"),
        ("5,125", "kwd", "en", "ambiguous"),  # 5.125 KWD cannot be charged; 5,125 KWD can
        ("125,255", "kwd", "en", "too_large"),  # neither 125.255 nor 125,255 KWD
        ("0,250", "kwd", "en", "format"),
        ("0.250", "kwd", "de", "format"),
        # Not above zero, too large, not a number written here.
        ("0", "eur", "en", "zero"),
        ("0,00", "eur", "de", "zero"),
        ("-5", "eur", "en", "negative"),
        ("\u221212,50", "eur", "de", "negative"),
        ("-€12.50", "eur", "en", "negative"),
        ("1.000.000,00", "eur", "de", "too_large"),
        ("9" * 200, "eur", "en", "too_large"),
        ("", "eur", "en", "blank"),
        ("   ", "eur", "de", "blank"),
        ("١٢", "eur", "en", "format"),  # Arabic-Indic digits
        ("１２", "eur", "de", "format"),  # full-width digits
        ("1e3", "eur", "en", "format"),
        ("+5", "eur", "en", "format"),
        ("1 250,00", "eur", "de", "format"),
        ("12,,50", "eur", "de", "format"),
        ("1,25,0", "eur", "en", "format"),  # groups of three only (Babel's strict check)
        (".5", "eur", "en", "format"),
        ("5.", "eur", "en", "format"),
        ("NaN", "eur", "en", "format"),
        ("Infinity", "eur", "en", "format"),
        ("12,50 $", "eur", "de", "format"),  # another currency's symbol
    ],
)
def test_anything_that_could_be_misread_is_refused(
    text: str, code: str, locale: str, reason: str
) -> None:
    assert _read(text, code, locale) == reason


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        (
            "12,50",
            "en",
            "Write the amount in digits with “.” before the decimals and “,” between "
            "thousands, such as 12.50 or 1,250.00.",
        ),
        (
            "1,250.00",
            "de",
            "Write the amount in digits with “,” before the decimals and “.” between "
            "thousands, such as 12,50 or 1.250,00.",
        ),
        (
            "1,250",
            "de",
            "“1,250” could mean 1,25\u00a0€ or 1.250,00\u00a0€. Write 1,25 for the first or "
            "1.250,00 for the second.",
        ),
        ("12.345", "en", "“12.345” is unclear here. For €12,345.00 write 12,345.00."),
        ("1.012,345", "de", "EUR amounts have at most 2 decimals, such as 12,50 or 1.250,00."),
        ("0", "de", "Enter an amount above zero, such as 12,50 or 1.250,00."),
        ("2.000.000", "de", "The amount can be at most 999.999,99\u00a0€."),
    ],
)
def test_a_refusal_shows_how_to_write_the_amount_on_this_page(
    text: str, locale: str, message: str
) -> None:
    got = money.parse_amount(text, EUR, locale)
    assert isinstance(got, AmountRefused)
    assert money.explain(got) == message


def test_refusals_for_other_currencies_name_their_decimals_and_steps() -> None:
    def said(text: str, cur: money.Currency, locale: str) -> str:
        got = money.parse_amount(text, cur, locale)
        assert isinstance(got, AmountRefused)
        return money.explain(got)

    assert said("12,5", JPY, "de") == "JPY amounts have no decimals, such as 500 or 1.250."
    assert said("1,250", JPY, "de") == "“1,250” is unclear here. For 1.250\u00a0¥ write 1.250."
    assert said("5.125", KWD, "en") == (
        "Stripe charges KWD only with 0 as the last decimal, such as 5.12 or 5.13."
    )


@pytest.mark.parametrize(
    ("text", "locale", "message", "first", "second"),
    [
        (
            "1,250",
            "de",
            "“1,250” could mean 1,25\u00a0KWD or 1.250,00\u00a0KWD. Write 1,25 for the first or "
            "1.250,00 for the second.",
            ("1,25", 1250),
            ("1.250,00", 1_250_000),
        ),
        (
            "1.250",
            "en",
            "“1.250” could mean KWD\u00a01.25 or KWD\u00a01,250.00. Write 1.25 for the first or "
            "1,250.00 for the second.",
            ("1.25", 1250),
            ("1,250.00", 1_250_000),
        ),
        (
            "1.250",
            "de",
            "“1.250” could mean 1,25\u00a0KWD or 1.250,00\u00a0KWD. Write 1,25 for the first or "
            "1.250,00 for the second.",
            ("1,25", 1250),
            ("1.250,00", 1_250_000),
        ),
        (
            "12,250",
            "en",
            "“12,250” could mean KWD\u00a012.25 or KWD\u00a012,250.00. Write 12.25 for the first "
            "or 12,250.00 for the second.",
            ("12.25", 12_250),
            ("12,250.00", 12_250_000),
        ),
    ],
)
def test_a_three_decimal_amount_that_reads_two_ways_names_both_and_how_to_write_each(
    text: str, locale: str, message: str, first: tuple[str, int], second: tuple[str, int]
) -> None:
    """The bug: ``1,250`` KWD on a German page was read as 1.250 KWD, and the confirmation
    showed ``1,250 KWD`` to a person who meant one thousand two hundred fifty."""
    got = money.parse_amount(text, KWD, locale)
    assert isinstance(got, AmountRefused) and got.reason == "ambiguous"
    assert money.explain(got) == message
    for typed, minor in (first, second):  # what it says to write reads one way, here
        assert money.parse_amount(typed, KWD, locale) == minor


def test_a_three_decimal_amount_with_one_chargeable_reading_names_that_one() -> None:
    got = money.parse_amount("125,250", KWD, "de")  # 125,250 KWD is above Stripe's limit
    assert isinstance(got, AmountRefused)
    assert money.explain(got) == "“125,250” is unclear here. For 125,25\u00a0KWD write 125,25."


def test_the_explanation_goes_through_the_given_gettext() -> None:
    got = money.parse_amount("", EUR, "de")
    assert isinstance(got, AmountRefused)
    german = {"Enter the amount, such as %(small)s or %(big)s.": "Betrag, z. B. %(small)s"}
    assert money.explain(got, lambda m: german.get(m, m)) == "Betrag, z. B. 12,50"


@pytest.mark.parametrize(
    ("minor", "cur", "locale", "shown"),
    [
        (1250, EUR, "de", "12,50\u00a0€"),
        (1250, EUR, "en", "€12.50"),
        (125000, EUR, "de", "1.250,00\u00a0€"),
        (125000, EUR, "en", "€1,250.00"),
        (1250, JPY, "en", "¥1,250"),
        (1250, JPY, "de", "1.250\u00a0¥"),
        # Three decimals ending in 0 (all Stripe charges) with two: never ``1,250 KWD``.
        (5120, KWD, "en", "KWD\u00a05.12"),
        (5120, KWD, "de", "5,12\u00a0KWD"),
        (1250, KWD, "de", "1,25\u00a0KWD"),
        (1250, KWD, "en", "KWD\u00a01.25"),
        (1_250_000, KWD, "de", "1.250,00\u00a0KWD"),
        (1_250_000, KWD, "en", "KWD\u00a01,250.00"),
        (250, money.CURRENCIES["bhd"], "de", "0,25\u00a0BHD"),
        # Off Stripe's step (only ever received from Stripe): all three decimals, as it is.
        (5125, KWD, "de", "5,125\u00a0KWD"),
        (1234, KWD, "en", "KWD\u00a01.234"),
        (500, ISK, "en", "ISK\u00a05"),
        (1250, money.CURRENCIES["chf"], "en", "CHF\u00a012.50"),
        (1250, money.CURRENCIES["usd"], "de", "12,50\u00a0$"),
    ],
)
def test_format_writes_the_amount_with_its_currency_for_the_locale(
    minor: int, cur: money.Currency, locale: str, shown: str
) -> None:
    assert money.format_amount(minor, cur, locale) == shown


def test_stripes_special_currencies_are_counted_as_stripe_documents() -> None:
    # https://docs.stripe.com/currencies: zero-decimal, three-decimal and the special cases.
    for code in [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]:
        assert money.CURRENCIES[code] == money.Currency(code, 0, 0), code
    for code in ["bhd", "jod", "kwd", "omr", "tnd"]:
        assert money.CURRENCIES[code] == money.Currency(code, 3, 3, step=10), code
    assert money.CURRENCIES["isk"] == money.Currency("isk", 2, 0, step=100)
    assert money.CURRENCIES["huf"] == money.Currency("huf", 2, 2)
    assert money.CURRENCIES["twd"] == money.Currency("twd", 2, 2)
    assert money.currency("EUR") == EUR and money.currency("xyz") is None
    assert len(money.CURRENCIES) > 130


# ----------------------------------------------------------------------------- properties


@st.composite
def _chargeable(draw: st.DrawFn) -> tuple[money.Currency, int]:
    cur = draw(st.sampled_from(sorted(money.CURRENCIES.values(), key=lambda c: c.code)))
    units = draw(
        st.one_of(
            st.integers(1, 10_000),
            st.integers(1, MAX_MINOR // cur.step),
            st.just(MAX_MINOR // cur.step),
        )
    )
    return cur, units * cur.step


@settings(max_examples=1500, deadline=None)
@given(_chargeable(), st.sampled_from(LOCALES))
def test_formatting_an_amount_and_reading_it_back_gives_the_same_minor_units(
    chargeable: tuple[money.Currency, int], locale: str
) -> None:
    cur, minor = chargeable
    assert money.parse_amount(money.format_amount(minor, cur, locale), cur, locale) == minor
    assert money.parse_amount(money.format_number(minor, cur, locale), cur, locale) == minor


@pytest.mark.parametrize("code", sorted(money.CURRENCIES))
@pytest.mark.parametrize("locale", LOCALES)
def test_every_listed_currency_round_trips_at_its_edges(code: str, locale: str) -> None:
    cur = money.CURRENCIES[code]
    for minor in (cur.step, 1250 * cur.step, MAX_MINOR - MAX_MINOR % cur.step):
        assert money.parse_amount(money.format_amount(minor, cur, locale), cur, locale) == minor


_TYPED = st.text(alphabet="0123456789.,", min_size=1, max_size=12)


_THREE_DECIMAL = [c for c in money.CURRENCIES.values() if c.decimals == 3]


@settings(max_examples=3000, deadline=None)
@given(
    _TYPED,
    st.one_of(
        st.sampled_from(_THREE_DECIMAL),  # drawn as often as all the others together
        st.sampled_from(sorted(money.CURRENCIES.values(), key=lambda c: c.code)),
    ),
)
def test_no_text_is_read_as_two_different_amounts_by_english_and_german_pages(
    text: str, cur: money.Currency
) -> None:
    """Whatever a person types, an English and a German page never both take it with different
    values: one of them refuses it — three-decimal currencies included (``1,250`` KWD, 1.25 in
    German and 1250 in English, is refused on both)."""
    en = money.parse_amount(text, cur, "en")
    de = money.parse_amount(text, cur, "de")
    if isinstance(en, int) and isinstance(de, int):
        assert en == de, (text, en, de)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=50), st.sampled_from(LOCALES))
def test_any_text_is_either_a_chargeable_amount_or_a_refusal(text: str, locale: str) -> None:
    got = money.parse_amount(text, EUR, locale)
    if isinstance(got, int):
        assert 1 <= got <= MAX_MINOR
        assert all(ch.isascii() for ch in text.strip(" \u00a0\u202f€EURu"))
    else:
        assert money.explain(got)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(_THREE_DECIMAL),
    st.one_of(st.integers(1, 100_000), st.integers(1, MAX_MINOR // 10)),
    st.sampled_from(LOCALES),
)
def test_no_three_decimal_amount_is_written_in_a_form_that_reads_two_ways(
    cur: money.Currency, tens: int, locale: str
) -> None:
    """What the pages and the confirmation step write for an amount Stripe charges is never one
    mark before three digits (``1,250 KWD``), is read back as that amount, and the other
    language's page refuses it or reads the same amount."""
    minor = tens * 10
    written = money.format_amount(minor, cur, locale)
    number = money.format_number(minor, cur, locale)
    assert number in written
    assert not re.fullmatch(r"[0-9]{1,3}[.,][0-9]{3}", number), written
    assert money.parse_amount(written, cur, locale) == minor
    other = "de" if locale == "en" else "en"
    elsewhere = money.parse_amount(written, cur, other)
    assert elsewhere == minor or isinstance(elsewhere, AmountRefused), (written, elsewhere)
