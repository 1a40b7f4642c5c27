"""Rules for a Stripe data set, as plain functions: no I/O, one message per field.

Messages say what is wrong and what to do, in the words of the help article, and never echo a
secret back (only its kind, e.g. ``sk_live_…``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from merchant_backend.errors import FieldError, InvalidInput

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
MODE_WORD = {"stage": "test", "live": "live"}
WHERE = {
    "account_id": "Stripe → gear → Profile → Accounts",
    "publishable_key": "Stripe → Developers → API keys",
    "secret_key": "Stripe → Developers → API keys → Reveal key",
    "webhook_signing_secret": (
        "Stripe → Developers → Webhooks → your endpoint → Signing secret → Reveal"
    ),
}
_KEY_PREFIXES = ("pk_", "sk_", "rk_", "whsec_")


def validate_env(env: str) -> Env:
    if env not in ENVS:
        raise InvalidInput(
            [FieldError("env", f"environment must be 'stage' or 'live', not {env[:20]!r}")]
        )
    return env


def _common(field: str, value: str | None, label: str) -> str | None:
    if value is None or value == "":
        return f"{label} is missing: copy it from {WHERE[field]}"
    if _WHITESPACE.search(value):
        return f"{label} contains spaces or line breaks: copy it again without them"
    if len(value) > MAX_LENGTH[field]:
        return (
            f"{label} is too long ({len(value)} characters, at most {MAX_LENGTH[field]}): "
            f"copy only the {label}"
        )
    return None


def _body(label: str, body: str, pattern: re.Pattern[str], allowed: str) -> str | None:
    """The part after a correct prefix: long enough, and only the characters Stripe uses."""
    if len(body) < MIN_BODY:
        return f"{label} is too short: copy the whole {label}, not part of it"
    if not pattern.fullmatch(body):
        return f"{label} contains characters other than {allowed}: copy it again from Stripe"
    return None


def _kind(value: str) -> str:
    """What a pasted value is, named without showing it (for swapped-field messages)."""
    if value.startswith("pk_"):
        return "a publishable key (pk_…)"
    if value.startswith(("sk_", "rk_")):
        return f"a secret key ({value[:3]}…)"
    if value.startswith("whsec_"):
        return "a webhook signing secret (whsec_…)"
    return "something else"


def check_account_id(value: str | None) -> str | None:
    problem = _common("account_id", value, "account id")
    if problem:
        return problem
    assert value is not None
    if value.startswith(_KEY_PREFIXES):
        return (
            f"this is {_kind(value)}, not the account id: the account id starts with acct_; "
            f"find it under {WHERE['account_id']}"
        )
    if not value.startswith("acct_"):
        return (
            "account id must be 'acct_' followed by letters and digits, e.g. acct_1A2b3C4d; "
            f"find it under {WHERE['account_id']}"
        )
    body = value[len("acct_") :]
    if not body:
        return f"account id is incomplete: copy the whole id from {WHERE['account_id']}"
    if not _ACCOUNT_BODY.fullmatch(body):
        return "account id must be 'acct_' followed by letters and digits only, e.g. acct_1A2b3C4d"
    return None


def _other(env: Env) -> Env:
    return "live" if env == "stage" else "stage"


def check_publishable_key(value: str | None, env: Env) -> str | None:
    problem = _common("publishable_key", value, "publishable key")
    if problem:
        return problem
    assert value is not None
    want = f"pk_{MODE[env]}_"
    if value.startswith(f"pk_{MODE[_other(env)]}_"):
        return (
            f"publishable key is a {MODE_WORD[_other(env)]} key (pk_{MODE[_other(env)]}_…) but "
            f"this is the {env} environment: copy the {MODE_WORD[env]} key ({want}…)"
        )
    if value.startswith(("sk_", "rk_")):
        return (
            f"this is a secret key, not the publishable key: copy the key that starts with {want}"
        )
    if value.startswith(("whsec_", "acct_")):
        return (
            f"this is {'the account id' if value.startswith('acct_') else _kind(value)}, not the "
            f"publishable key: copy the key that starts with {want} from {WHERE['publishable_key']}"
        )
    if not value.startswith(want):
        return (
            f"publishable key must start with {want} followed by letters and digits; "
            f"find it under {WHERE['publishable_key']}"
        )
    return _body("publishable key", value[len(want) :], _KEY_BODY, "letters, digits and '_'")


def check_secret_key(value: str | None, env: Env) -> str | None:
    problem = _common("secret_key", value, "secret key")
    if problem:
        return problem
    assert value is not None
    mode, other = MODE[env], MODE[_other(env)]
    if value.startswith((f"sk_{other}_", f"rk_{other}_")):
        return (
            f"secret key is a {MODE_WORD[_other(env)]} key ({value[:3]}{other}_…) but this is the "
            f"{env} environment: copy the {MODE_WORD[env]} key (sk_{mode}_… or rk_{mode}_…)"
        )
    if value.startswith("pk_"):
        return (
            "this is the publishable key, not the secret key: reveal and copy the key that starts "
            f"with sk_{mode}_"
        )
    if value.startswith(("whsec_", "acct_")):
        return (
            f"this is {'the account id' if value.startswith('acct_') else _kind(value)}, not the "
            f"secret key: reveal and copy the key that starts with sk_{mode}_ from "
            f"{WHERE['secret_key']}"
        )
    for prefix in (f"sk_{mode}_", f"rk_{mode}_"):
        if value.startswith(prefix):
            return _body("secret key", value[len(prefix) :], _KEY_BODY, "letters, digits and '_'")
    return f"secret key must start with sk_{mode}_ (or rk_{mode}_ for a restricted key)"


def check_signing_secret(value: str | None) -> str | None:
    problem = _common("webhook_signing_secret", value, "webhook signing secret")
    if problem:
        return problem
    assert value is not None
    if value.startswith(("pk_", "sk_", "rk_", "acct_")):
        return (
            f"this is {'the account id' if value.startswith('acct_') else _kind(value)}, not the "
            "webhook signing secret: copy the secret that starts with whsec_ from "
            f"{WHERE['webhook_signing_secret']}"
        )
    if not value.startswith("whsec_"):
        return (
            "webhook signing secret must start with whsec_; find it under "
            f"{WHERE['webhook_signing_secret']}"
        )
    return _body(
        "webhook signing secret", value[len("whsec_") :], _WHSEC_BODY, "letters, digits and +/=_-"
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
