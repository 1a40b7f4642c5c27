"""Rules for a Stripe data set, as plain functions: no I/O, one message per field.

Messages say what is wrong and what to do, in the words of the help article, and never echo a
secret back (only its kind, e.g. ``sk_live_…``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Env = Literal["stage", "live"]
ENVS: tuple[Env, ...] = ("stage", "live")

# Stripe ids and keys are ASCII letters and digits after their prefix (keys may carry '_').
_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,64}")
_KEY_BODY = re.compile(r"[A-Za-z0-9_]{8,255}")
_WHSEC_BODY = re.compile(r"[A-Za-z0-9+/=_-]{8,255}")
_WHITESPACE = re.compile(r"\s")

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


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def validate_env(env: str) -> Env:
    if env not in ENVS:
        raise ValidationFailed(
            [FieldError("env", f"environment must be 'stage' or 'live', not {env[:20]!r}")]
        )
    return env


def _common(field: str, value: str | None, label: str) -> str | None:
    if value is None or value == "":
        return f"{label} is missing: copy it from {WHERE[field]}"
    if _WHITESPACE.search(value):
        return f"{label} contains spaces or line breaks: copy it again without them"
    if len(value) > 300:
        return f"{label} is too long ({len(value)} characters): copy only the {label}"
    return None


def check_account_id(value: str | None) -> str | None:
    problem = _common("account_id", value, "account id")
    if problem:
        return problem
    assert value is not None
    if not _ACCOUNT.fullmatch(value):
        return (
            "account id must be 'acct_' followed by letters and digits, e.g. acct_1A2b3C4d; "
            f"find it under {WHERE['account_id']}"
        )
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
    if not value.startswith(want) or not _KEY_BODY.fullmatch(value[len(want) :]):
        return f"publishable key must start with {want} followed by letters and digits"
    return None


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
    for prefix in (f"sk_{mode}_", f"rk_{mode}_"):
        if value.startswith(prefix) and _KEY_BODY.fullmatch(value[len(prefix) :]):
            return None
    return f"secret key must start with sk_{mode}_ (or rk_{mode}_ for a restricted key)"


def check_signing_secret(value: str | None) -> str | None:
    problem = _common("webhook_signing_secret", value, "webhook signing secret")
    if problem:
        return problem
    assert value is not None
    if not value.startswith("whsec_") or not _WHSEC_BODY.fullmatch(value[6:]):
        return (
            "webhook signing secret must start with whsec_; find it under "
            f"{WHERE['webhook_signing_secret']}"
        )
    return None


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
