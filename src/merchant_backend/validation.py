"""Rules for a Stripe data set, as plain functions: no I/O, one message per field.

Messages say what is wrong and what to do, in the words of the help article, and never echo a
secret back (only its kind, e.g. ``sk_live_…``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from merchant_backend.errors import FieldError, InvalidInput
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _

Env = Literal["stage", "live"]
ENVS: tuple[Env, ...] = ("stage", "live")

# Stripe ids and keys are ASCII letters and digits after their prefix (keys may carry '_').
_ACCOUNT_BODY = re.compile(r"[A-Za-z0-9]+")
_KEY_BODY = re.compile(r"[A-Za-z0-9_]+")
_WHSEC_BODY = re.compile(r"[A-Za-z0-9+/=_-]+")
_WHITESPACE = re.compile(r"\s")

# Sane lengths: Stripe's keys are far shorter than 255 today, and an account id is acct_ and
# 16 characters; the limits only catch a paste of something else (and fit the columns).
MAX_LENGTH = {
    "account_id": 69,
    "publishable_key": 255,
    "secret_key": 255,
    "webhook_signing_secret": 255,
}
MIN_BODY = 8  # characters after the prefix; a real key or secret has 24 or more

MODE = {"stage": "test", "live": "live"}
MODE_WORD = {"stage": N_("test"), "live": N_("live")}
# Where each value is in Stripe's dashboard (translated where shown).
WHERE = {
    "account_id": N_("Stripe → gear → Profile → Accounts"),
    "publishable_key": N_("Stripe → Developers → API keys"),
    "secret_key": N_("Stripe → Developers → API keys → Reveal key"),
    "webhook_signing_secret": N_(
        "Stripe → Developers → Webhooks → your endpoint → Signing secret → Reveal"
    ),
}
# The fields as the messages name them.
LABEL = {
    "account_id": N_("account id"),
    "publishable_key": N_("publishable key"),
    "secret_key": N_("secret key"),
    "webhook_signing_secret": N_("webhook signing secret"),
}
_KEY_PREFIXES = ("pk_", "sk_", "rk_", "whsec_")

# The messages below are marked for the web pages' catalogue: a page shows them in its
# reader's language; the API and the CLI, which set no reader, get them in English.


def _t(message: str, **values: object) -> str:
    """``message`` translated for the current reader, then filled in."""
    return _(message) % values if values else _(message)


def _where(field: str) -> str:
    return _(WHERE[field])


def validate_env(env: str) -> Env:
    if env not in ENVS:
        raise InvalidInput(
            [FieldError("env", f"environment must be 'stage' or 'live', not {env[:20]!r}")]
        )
    return env


def _common(field: str, value: str | None) -> str | None:
    label = _(LABEL[field])
    if value is None or value == "":
        return _t("%(label)s is missing: copy it from %(where)s", label=label, where=_where(field))
    if _WHITESPACE.search(value):
        return _t(
            "%(label)s contains spaces or line breaks: copy it again without them", label=label
        )
    if len(value) > MAX_LENGTH[field]:
        return _t(
            "%(label)s is too long (%(length)s characters, at most %(most)s): copy only the "
            "%(label)s",
            label=label,
            length=len(value),
            most=MAX_LENGTH[field],
        )
    return None


def _body(field: str, body: str, pattern: re.Pattern[str], allowed: str) -> str | None:
    """The part after a correct prefix: long enough, and only the characters Stripe uses."""
    label = _(LABEL[field])
    if len(body) < MIN_BODY:
        return _t("%(label)s is too short: copy the whole %(label)s, not part of it", label=label)
    if not pattern.fullmatch(body):
        return _t(
            "%(label)s contains characters other than %(allowed)s: copy it again from Stripe",
            label=label,
            allowed=allowed,
        )
    return None


def _kind(value: str) -> str:
    """What a pasted value is, named without showing it (for swapped-field messages)."""
    if value.startswith("acct_"):
        return _("the account id")
    if value.startswith("pk_"):
        return _("a publishable key (pk_…)")
    if value.startswith(("sk_", "rk_")):
        return _t("a secret key (%(prefix)s…)", prefix=value[:3])
    if value.startswith("whsec_"):
        return _("a webhook signing secret (whsec_…)")
    return _("something else")


def check_account_id(value: str | None) -> str | None:
    problem = _common("account_id", value)
    if problem:
        return problem
    assert value is not None
    where = _where("account_id")
    if value.startswith(_KEY_PREFIXES):
        return _t(
            "this is %(kind)s, not the account id: the account id starts with acct_; find it "
            "under %(where)s",
            kind=_kind(value),
            where=where,
        )
    if not value.startswith("acct_"):
        return _t(
            "account id must be 'acct_' followed by letters and digits, e.g. acct_1A2b3C4d; "
            "find it under %(where)s",
            where=where,
        )
    body = value[len("acct_") :]
    if not body:
        return _t("account id is incomplete: copy the whole id from %(where)s", where=where)
    if not _ACCOUNT_BODY.fullmatch(body):
        return _t(
            "account id must be 'acct_' followed by letters and digits only, e.g. acct_1A2b3C4d"
        )
    return None


def _other(env: Env) -> Env:
    return "live" if env == "stage" else "stage"


_KEY_CHARACTERS = N_("letters, digits and '_'")


def check_publishable_key(value: str | None, env: Env) -> str | None:
    problem = _common("publishable_key", value)
    if problem:
        return problem
    assert value is not None
    want = f"pk_{MODE[env]}_"
    if value.startswith(f"pk_{MODE[_other(env)]}_"):
        return _t(
            "publishable key is a %(other_word)s key (%(other_prefix)s…) but this is the %(env)s "
            "environment: copy the %(word)s key (%(want)s…)",
            other_word=_(MODE_WORD[_other(env)]),
            other_prefix=f"pk_{MODE[_other(env)]}_",
            env=env,
            word=_(MODE_WORD[env]),
            want=want,
        )
    if value.startswith(("sk_", "rk_")):
        return _t(
            "this is a secret key, not the publishable key: copy the key that starts with %(want)s",
            want=want,
        )
    if value.startswith(("whsec_", "acct_")):
        return _t(
            "this is %(kind)s, not the publishable key: copy the key that starts with %(want)s "
            "from %(where)s",
            kind=_kind(value),
            want=want,
            where=_where("publishable_key"),
        )
    if not value.startswith(want):
        return _t(
            "publishable key must start with %(want)s followed by letters and digits; find it "
            "under %(where)s",
            want=want,
            where=_where("publishable_key"),
        )
    return _body("publishable_key", value[len(want) :], _KEY_BODY, _(_KEY_CHARACTERS))


def check_secret_key(value: str | None, env: Env) -> str | None:
    problem = _common("secret_key", value)
    if problem:
        return problem
    assert value is not None
    mode, other = MODE[env], MODE[_other(env)]
    if value.startswith((f"sk_{other}_", f"rk_{other}_")):
        return _t(
            "secret key is a %(other_word)s key (%(other_prefix)s…) but this is the %(env)s "
            "environment: copy the %(word)s key (sk_%(mode)s_… or rk_%(mode)s_…)",
            other_word=_(MODE_WORD[_other(env)]),
            other_prefix=f"{value[:3]}{other}_",
            env=env,
            word=_(MODE_WORD[env]),
            mode=mode,
        )
    if value.startswith("pk_"):
        return _t(
            "this is the publishable key, not the secret key: reveal and copy the key that "
            "starts with sk_%(mode)s_",
            mode=mode,
        )
    if value.startswith(("whsec_", "acct_")):
        return _t(
            "this is %(kind)s, not the secret key: reveal and copy the key that starts with "
            "sk_%(mode)s_ from %(where)s",
            kind=_kind(value),
            mode=mode,
            where=_where("secret_key"),
        )
    for prefix in (f"sk_{mode}_", f"rk_{mode}_"):
        if value.startswith(prefix):
            return _body("secret_key", value[len(prefix) :], _KEY_BODY, _(_KEY_CHARACTERS))
    return _t(
        "secret key must start with sk_%(mode)s_ (or rk_%(mode)s_ for a restricted key)", mode=mode
    )


def check_signing_secret(value: str | None) -> str | None:
    problem = _common("webhook_signing_secret", value)
    if problem:
        return problem
    assert value is not None
    where = _where("webhook_signing_secret")
    if value.startswith(("pk_", "sk_", "rk_", "acct_")):
        return _t(
            "this is %(kind)s, not the webhook signing secret: copy the secret that starts with "
            "whsec_ from %(where)s",
            kind=_kind(value),
            where=where,
        )
    if not value.startswith("whsec_"):
        return _t(
            "webhook signing secret must start with whsec_; find it under %(where)s", where=where
        )
    return _body(
        "webhook_signing_secret",
        value[len("whsec_") :],
        _WHSEC_BODY,
        _("letters, digits and +/=_-"),
    )


@dataclass(frozen=True)
class DataSetInput:
    account_id: str | None
    publishable_key: str | None
    secret_key: str | None
    webhook_signing_secret: str | None


def validate_data_set(
    data: DataSetInput, env: Env, *, require_secret_key: bool = True
) -> list[FieldError]:
    """All problems at once, so a form can show each beside its field.

    ``webhook_signing_secret`` may be absent: the article creates the webhook last.
    ``secret_key`` may be absent when one is already stored (``require_secret_key=False``).
    """
    errors: list[FieldError] = []
    checks: list[tuple[str, str | None]] = [
        ("account_id", check_account_id(data.account_id)),
        ("publishable_key", check_publishable_key(data.publishable_key, env)),
    ]
    if data.secret_key is not None or require_secret_key:
        checks.append(("secret_key", check_secret_key(data.secret_key, env)))
    if data.webhook_signing_secret is not None:
        checks.append(("webhook_signing_secret", check_signing_secret(data.webhook_signing_secret)))
    for field, message in checks:
        if message:
            errors.append(FieldError(field, message))
    return errors


# ---- Bounded input (issue 9) --------------------------------------------------------------

# Our merchant ids: "mer_" and 16 lowercase hex digits (store.merchants.create). A path that is
# not one is refused before any lookup, and never written whole into a log line.
_MERCHANT_ID = re.compile(r"mer_[0-9a-f]{16}")
# Digits as people type them into forms and headers: ASCII only. str.isdigit() also says yes
# to '²' or '٣', which int() then refuses (a 500 where a 400 belongs).
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Anything shaped like a Stripe secret key, restricted key or webhook signing secret.
_SECRET_SHAPED = re.compile(r"\b((?:sk|rk)_(?:test|live)_|whsec_)[A-Za-z0-9_+/=-]{4,}")


def is_merchant_id(text: str) -> bool:
    return _MERCHANT_ID.fullmatch(text) is not None


def loggable_id(text: str) -> str:
    """An id from a URL as a log line may carry it: whole if it is one of ours, else cut short
    and marked (a 60 KB path must not write a 60 KB line)."""
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} characters)"


def parse_ascii_int(text: str, *, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative integer if it is ASCII digits only (at most ``max_digits``);
    None otherwise."""
    if len(text) > max_digits or _ASCII_DIGITS.fullmatch(text) is None:
        return None
    return int(text)


def looks_like_secret(text: str) -> bool:
    return _SECRET_SHAPED.search(text) is not None


def hide_secrets(text: str) -> str:
    """``text`` with anything shaped like a secret cut down to its kind (``sk_live_…``): for
    every value a page or an error message shows back."""
    return _SECRET_SHAPED.sub(lambda m: m.group(1) + "…", text)


_DURATION = re.compile(r"([0-9]{1,6})([dh])")


def parse_duration(text: str) -> float:
    """``90d`` or ``12h`` (ASCII digits) as seconds; ValueError with what to write otherwise."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"write a number of days or hours, such as 90d or 36h, not {text[:20]!r}")
    return int(found.group(1)) * (86400.0 if found.group(2) == "d" else 3600.0)
