"""Amounts as people type and read them, and as Stripe counts them. Pure, no I/O.

Stripe counts an amount in the currency's *minor unit* (``1250`` EUR is 12.50 €). A person types
it in the way of the page's language: ``12,50`` on a German page, ``12.50`` on an English one.
Reading one as the other charges a hundred times too much, so the rule here is: **an amount is
read only when it can be read one way.**

How a typed amount is read (``parse_amount``), in this order:

1. Blank is refused. Spaces around it, and the currency's symbol or code before or after it
   (``€12.50``, ``12,50 €``, ``EUR 12.50``), are allowed: what ``format_amount`` writes is
   read back.
2. A minus sign is refused (an amount to charge is above zero).
3. What is left must be ASCII digits with the locale's own decimal mark and grouping mark
   (Babel's CLDR data: ``.``/``,`` for English, ``,``/``.`` for German). Anything else — a
   decimal mark after a grouping mark of the other kind (``1,250.00`` on a German page), other
   digits (``١٢``), exponents, spaces inside — is refused with the way to write it here.
4. *Ambiguous*: one decimal mark followed by exactly three digits, after a whole part of one to
   three digits that is not zero (``1,250`` on a German page, ``1.250`` on an English one;
   leading zeros do not count, ``01,250`` too), is how the other language groups thousands. It
   is refused, naming each reading that can be charged and how to write it here (``1,25`` /
   ``1.250,00``). Three-decimal currencies (BHD JOD KWD OMR TND) are no exception: ``1,250``
   KWD is 1.250 KWD to a German reader and 1,250 KWD to an English one; reading it one way
   charged a thousand times too little, and the confirmation showed the very string that was
   typed. For them the mirror is refused too: one *grouping* mark followed by exactly three
   digits (``1,250`` on an English page, ``1.250`` on a German one) is the page's thousands but
   the other language's three decimals (a thousand times too much). Accepted for them, as each
   has one reading:

   - ``0,250`` (de) / ``0.250`` (en): nobody groups thousands after a lone zero (Babel refuses
     ``0.250`` on a German page, ``0,250`` on an English one);
   - ``1,25``, ``1,2`` (de) / ``1.25``, ``1.2`` (en): fewer than three digits are no group;
   - ``1.250,000`` or ``1.250,00`` (de) / ``1,250.000`` or ``1,250.00`` (en): both marks, in
     the page's order (the other order is refused by rule 3);
   - ``1250,000`` (de) / ``1250.000`` (en): four digits before the mark are no group;
   - ``1250``: no mark at all.

   Only readings that can be charged are named (``125,250`` KWD on a German page names
   125,25 KWD: 125,250 KWD is above Stripe's limit). When the page's own reading is a decimal
   Stripe cannot charge (``5,125`` KWD on a German page: the last decimal must be 0), rule 7's
   step refusal is said instead, with neighbours that read one way (``5,12``, ``5,13``); when
   no reading can be charged, the page's own refusal. Either way nothing is read.
5. Babel's ``parse_decimal(strict=True)`` must accept it (groups of three in the right places).
6. No more decimals than the currency has (``12,345`` EUR, ``5,5`` JPY are refused) — counted
   as typed, so ``12,500`` is not silently 12.50.
7. Stripe's own steps: three-decimal currencies only in steps of 10 minor units, ISK in whole
   krónur (see ``CURRENCIES``).
8. Above zero and at most ``MAX_MINOR`` minor units (Stripe's limit for a PaymentIntent).

``format_amount`` writes an amount for a locale with its currency (``12,50 €``, ``€12.50``),
with as many decimals as are typed for that currency, so ``parse_amount(format_amount(x)) == x``
for every currency listed and every amount Stripe accepts (the Hypothesis test in
``tests/test_money.py``). A three-decimal amount whose third decimal is 0 — every amount Stripe
charges in them, as it takes only steps of 10 — is written with *two* decimals (``1,25 KWD``
for ``amount=1250``, ``KWD 1,250.00`` for ``amount=1250000``): written with three it would be
the ambiguous ``1,250 KWD`` of rule 4, which the page refuses when typed, and the confirmation
step would show a person the very string they misread. Two decimals say the same amount and
read one way in both languages. An amount off Stripe's step (received from Stripe, never
typed) is still written with its three decimals (``5,125 KWD``): dropping one would show
another amount.

A refusal is an ``AmountRefused`` (a reason and the examples in the locale's own writing);
``explain`` turns it into a sentence through a gettext-style function, so the web pages can say
it in the page's language.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from babel import Locale
from babel.numbers import (
    NumberFormatError,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

# The largest amount Stripe takes for a PaymentIntent (eight digits of the minor unit).
MAX_MINOR = 99_999_999


@dataclass(frozen=True)
class Currency:
    """How Stripe counts one currency.

    ``exponent``: digits of Stripe's minor unit (``amount=1250`` with 2 is 12.50).
    ``decimals``: decimals a person types and reads (ISK: 0, though Stripe's amount has 2).
    ``step``: Stripe takes only multiples of this many minor units.
    """

    code: str
    exponent: int
    decimals: int
    step: int = 1


# From Stripe's "Supported currencies" page, https://docs.stripe.com/currencies (as of 2026):
# presentment currencies are two-decimal unless listed below.
# - Zero-decimal (https://docs.stripe.com/currencies#zero-decimal): BIF CLP DJF GNF JPY KMF KRW
#   MGA PYG RWF UGX VND VUV XAF XOF XPF — ``amount=500`` JPY is ¥500.
# - Three-decimal (https://docs.stripe.com/currencies#three-decimal): BHD JOD KWD OMR TND —
#   ``amount=5120`` is 5.120 KWD, and the last digit must be 0 (Stripe rounds 5.124 to 5.120 for
#   its acquirers), hence step 10.
# - Special cases (https://docs.stripe.com/currencies#special-cases): ISK has no minor unit any
#   more but the API keeps two decimals that must be 00 (``amount=500`` is 5 ISK), hence
#   decimals 0 and step 100. HUF and TWD are charged with two decimals (they are zero-decimal
#   for payouts only, which this service does not make), so they are two-decimal here.
# A currency that is not listed is refused: we would not know how Stripe counts it.


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


ZERO_DECIMAL = _codes("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
THREE_DECIMAL = _codes("bhd jod kwd omr tnd")
TWO_DECIMAL = _codes(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd bwp byn bzd
    cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gtq gyd hkd
    hnl htg huf idr ils inr jmd kes kgs khr kyd kzt lak lbp lkr lrd lsl mad mdl mkd mmk mnt mop
    mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln qar ron rsd rub sar
    sbd scr sek sgd shp sle sos srd std szl thb tjs top try ttd twd tzs uah uyu uzs wst xcd xcg
    yer zar zmw
    """
)
CURRENCIES: dict[str, Currency] = {
    **{c: Currency(c, 2, 2) for c in TWO_DECIMAL},
    **{c: Currency(c, 0, 0) for c in ZERO_DECIMAL},
    **{c: Currency(c, 3, 3, step=10) for c in THREE_DECIMAL},
    "isk": Currency("isk", 2, 0, step=100),
}


def currency(code: str) -> Currency | None:
    """The currency for a code in any case (``EUR``, ``eur``), or None when Stripe lists none."""
    return CURRENCIES.get(code.strip().lower())


Reason = Literal[
    "blank", "negative", "format", "ambiguous", "decimals", "step", "zero", "too_large"
]


@dataclass(frozen=True)
class AmountRefused:
    """Why a typed amount was not read, with what to write instead, the locale's way.

    ``examples``: two amounts of this currency as they are typed here (``12,50``, ``1.250,00``).
    ``readings``: amounts meant or nearest — each way an ambiguous amount could be meant, the
    allowed amounts beside one off Stripe's step, the largest amount — each as
    ``(with the currency, as typed)``: ``("1,25 €", "1,25")``.
    """

    reason: Reason
    currency: str
    decimals: int
    decimal_mark: str
    group_mark: str
    examples: tuple[str, str]
    readings: tuple[tuple[str, str], ...] = ()
    typed: str = ""


# ----------------------------------------------------------------------------- locale facts


@cache
def _locale(locale: str) -> Locale:
    return Locale.parse(locale.replace("-", "_"))


@cache
def marks(locale: str) -> tuple[str, str]:
    """The locale's decimal mark and grouping mark: ``(",", ".")`` for German."""
    loc = _locale(locale)
    return get_decimal_symbol(loc), get_group_symbol(loc)


@cache
def _pattern(locale: str, decimals: int, with_currency: bool) -> Any:
    loc = _locale(locale)
    fixed = copy.copy(
        loc.currency_formats["standard"] if with_currency else loc.decimal_formats[None]
    )
    fixed.frac_prec = (decimals, decimals)
    return fixed


def _symbol(cur: Currency, locale: str) -> str:
    return str(get_currency_symbol(cur.code.upper(), _locale(locale)))


# ----------------------------------------------------------------------------- formatting


def _value(minor: int, cur: Currency) -> Decimal:
    return Decimal(minor).scaleb(-cur.exponent)


def _written_decimals(minor: int, cur: Currency) -> int:
    """Decimals to write: the typed ones, but two for a three-decimal amount ending in 0
    (``1,25 KWD``, never the ambiguous ``1,250 KWD``: see the module docstring)."""
    if cur.decimals == 3 and minor % 10 == 0:
        return 2
    return cur.decimals


def format_number(minor: int, cur: Currency, locale: str) -> str:
    """``1250`` EUR as ``12,50`` (de) / ``12.50`` (en): the number alone, as a person types it
    (``1250`` KWD as ``1,25`` / ``1.25``)."""
    pattern = _pattern(locale, _written_decimals(minor, cur), False)
    return str(pattern.apply(_value(minor, cur), _locale(locale)))


def format_amount(minor: int, cur: Currency, locale: str) -> str:
    """``1250`` EUR as ``12,50 €`` (de) / ``€12.50`` (en), with the currency's typed decimals
    (a three-decimal amount ending in 0 with two: ``1250`` KWD as ``1,25 KWD`` / ``KWD 1.25``).

    Babel does not apply CLDR's currency spacing, so a symbol that ends in a letter or a dot
    (``CHF``, ``Cg.``) gets a no-break space before the digits: ``CHF 12.50``, not ``CHF12.50``.
    """
    text = str(
        _pattern(locale, _written_decimals(minor, cur), True).apply(
            _value(minor, cur), _locale(locale), currency=cur.code.upper(), currency_digits=False
        )
    )
    symbol = _symbol(cur, locale)
    rest = text[len(symbol) :]
    if (
        text.startswith(symbol)
        and (symbol[-1].isalpha() or symbol[-1] == ".")
        and rest[:1].isdigit()
    ):
        text = f"{symbol}\u00a0{rest}"
    return text


def examples(cur: Currency, locale: str) -> tuple[str, str]:
    """Two amounts as typed here: a small one (``12,50``, ``500`` JPY) and one with thousands."""
    small = Decimal("12.5") if cur.decimals else Decimal(500)
    return (
        format_number(int(small.scaleb(cur.exponent)), cur, locale),
        format_number(int(Decimal(1250).scaleb(cur.exponent)), cur, locale),
    )


# ----------------------------------------------------------------------------- parsing

_SPACES = " \t\u00a0\u202f"
_MINUS = ("-", "\u2212")
_MAX_TYPED = 40  # every amount Stripe takes is written shorter than this


def _strip_currency(text: str, cur: Currency, locale: str) -> str:
    """Drops the currency's symbol or code before or after the number (what format adds)."""
    for mark in sorted({_symbol(cur, locale), cur.code.upper(), cur.code.lower()}, key=len)[::-1]:
        if text.startswith(mark):
            return text[len(mark) :].strip(_SPACES)
        if text.endswith(mark):
            return text[: -len(mark)].strip(_SPACES)
    return text


def _exact_minor(value: Decimal, cur: Currency) -> int | None:
    """The minor units of ``value`` if it can be typed and charged in the currency, else None."""
    scaled = value.scaleb(cur.exponent)
    if scaled != scaled.to_integral_value() or scaled <= 0:
        return None
    minor = int(scaled)
    typed = value.scaleb(cur.decimals)
    if minor % cur.step or typed != typed.to_integral_value() or minor > MAX_MINOR:
        return None
    return minor


def parse_amount(text: str, cur: Currency, locale: str) -> int | AmountRefused:
    """The minor units of an amount typed on a page in ``locale``, or why it is refused."""
    decimal_mark, group_mark = marks(locale)

    def refused(reason: Reason, *readings: int | None) -> AmountRefused:
        return AmountRefused(
            reason=reason,
            currency=cur.code.upper(),
            decimals=cur.decimals,
            decimal_mark=decimal_mark,
            group_mark=group_mark,
            examples=examples(cur, locale),
            readings=tuple(
                (format_amount(r, cur, locale), format_number(r, cur, locale))
                for r in readings
                if r is not None
            ),
            typed=text.strip(_SPACES)[:_MAX_TYPED],
        )

    largest = MAX_MINOR - MAX_MINOR % cur.step
    core = text.strip(_SPACES)
    if not core:
        return refused("blank")
    core = _strip_currency(core, cur, locale)
    if core.startswith(_MINUS):
        return refused("negative")
    if len(core) > _MAX_TYPED:
        return refused("too_large", largest)
    d, g = re.escape(decimal_mark), re.escape(group_mark)
    # ASCII digits only ([0-9], not \d): other scripts' digits are refused, not converted.
    if not re.fullmatch(rf"[0-9]+(?:{g}[0-9]+)*(?:{d}[0-9]+)?", core):
        return refused("format")
    # Rule 4: one mark and three digits that the other language reads another way; for
    # three-decimal currencies the page's grouping mark too (its thousands, the other's decimals).
    either = f"[{d}{g}]" if cur.decimals == 3 else d
    if re.fullmatch(rf"0*[1-9][0-9]{{0,2}}{either}[0-9]{{3}}", core):
        mark = decimal_mark if decimal_mark in core else group_mark
        whole, frac = core.split(mark)
        as_decimal = _exact_minor(Decimal(f"{whole}.{frac}"), cur)
        as_thousands = _exact_minor(Decimal(whole + frac), cur)
        # The page reads a decimal Stripe cannot charge (``5,125`` KWD here): the step refusal
        # below says so with its neighbours; with no reading to charge, the page's own refusal.
        own_off_step = cur.decimals == 3 and mark == decimal_mark and as_decimal is None
        if not own_off_step and (as_decimal is not None or as_thousands is not None):
            return refused("ambiguous", as_decimal, as_thousands)
    try:
        value = parse_decimal(core, locale=_locale(locale), strict=True)
    except NumberFormatError:
        return refused("format")
    typed_decimals = len(core.split(decimal_mark)[1]) if decimal_mark in core else 0
    if typed_decimals > cur.decimals:
        return refused("decimals")
    minor = int(value.scaleb(cur.exponent))
    if minor > MAX_MINOR:
        return refused("too_large", largest)
    if minor % cur.step:
        lower = minor - minor % cur.step
        return refused("step", lower or None, lower + cur.step)
    if minor == 0:
        return refused("zero")
    return minor


# ----------------------------------------------------------------------------- messages


def _untranslated(message: str) -> str:
    return message


def explain(refusal: AmountRefused, gettext: Callable[[str], str] = _untranslated) -> str:
    """The refusal as one sentence that shows how to write the amount on this page.

    ``gettext`` translates the sentence into the page's language; the placeholders are filled
    after, with amounts already written the locale's way.
    """
    _ = gettext
    r = refusal
    first = r.readings[0] if r.readings else ("", "")
    second = r.readings[1] if len(r.readings) > 1 else ("", "")
    values = {
        "small": r.examples[0],
        "big": r.examples[1],
        "decimal": r.decimal_mark,
        "group": r.group_mark,
        "currency": r.currency,
        "places": r.decimals,
        "typed": r.typed,
        "first": first[0],
        "first_typed": first[1],
        "second": second[0],
        "second_typed": second[1],
    }
    if r.reason == "blank":
        text = _("Enter the amount, such as %(small)s or %(big)s.")
    elif r.reason in ("negative", "zero"):
        text = _("Enter an amount above zero, such as %(small)s or %(big)s.")
    elif r.reason == "format":
        text = _(
            "Write the amount in digits with “%(decimal)s” before the decimals and “%(group)s” "
            "between thousands, such as %(small)s or %(big)s."
        )
    elif r.reason == "ambiguous" and second[0]:
        text = _(
            "“%(typed)s” could mean %(first)s or %(second)s. Write %(first_typed)s for the "
            "first or %(second_typed)s for the second."
        )
    elif r.reason == "ambiguous":
        text = _("“%(typed)s” is unclear here. For %(first)s write %(first_typed)s.")
    elif r.reason == "decimals" and r.decimals == 0:
        text = _("%(currency)s amounts have no decimals, such as %(small)s or %(big)s.")
    elif r.reason == "decimals":
        text = _(
            "%(currency)s amounts have at most %(places)s decimals, such as %(small)s or %(big)s."
        )
    elif r.reason == "step" and second[0] and first[0]:
        text = _(
            "Stripe charges %(currency)s only with 0 as the last decimal, such as "
            "%(first_typed)s or %(second_typed)s."
        )
    elif r.reason == "step":
        text = _("Stripe charges %(currency)s only with 0 as the last decimal, such as %(small)s.")
    else:
        text = _("The amount can be at most %(first)s.")
    return text % values
