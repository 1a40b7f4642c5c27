"""The four fields of the Stripe data set as the connection page shows them. Pure.

Help texts follow the help article's walk through Stripe's screens. A secret is never put back
into the page: a stored one shows only masked, a rejected one must be pasted again.
"""

from __future__ import annotations

from dataclasses import dataclass

from merchant_backend.errors import FieldError
from merchant_backend.i18n import gettext as _
from merchant_backend.services.datasets import StoredDataSet
from merchant_backend.validation import MODE, DataSetInput, Env

FIELD_NAMES = ("account_id", "publishable_key", "secret_key", "webhook_signing_secret")
SECRET_FIELDS = frozenset({"secret_key", "webhook_signing_secret"})


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    help: str
    placeholder: str
    secret: bool
    value: str  # what the input shows; always "" for a secret
    masked: str | None  # the stored secret, masked
    error: str | None

    @property
    def dom_id(self) -> str:
        return f"f-{self.name.replace('_', '-')}"


def _labels(env: Env) -> dict[str, tuple[str, str, str]]:
    """Label, help and placeholder of each field, in the reader's language."""
    mode = MODE[env]
    switch = _("test mode") if env == "stage" else _("live mode (test mode switched off)")
    return {
        "account_id": (
            _("Account ID"),
            _(
                "In Stripe click the gear symbol (top right) → Profile, scroll to the very "
                "bottom: the ID is in the list under Accounts."
            ),
            "acct_…",
        ),
        "publishable_key": (
            _("Publishable key"),
            _("In Stripe, in %(switch)s: Developers → API keys → Publishable key.")
            % {"switch": switch},
            f"pk_{mode}_…",
        ),
        "secret_key": (
            _("Secret key"),
            _(
                "In Stripe, in %(switch)s: Developers → API keys → Secret key → Reveal "
                "%(mode)s key. A restricted key (rk_%(mode)s_…) works too."
            )
            % {"switch": switch, "mode": mode},
            f"sk_{mode}_…",
        ),
        "webhook_signing_secret": (
            _("Webhook signing secret"),
            _(
                "In Stripe: Developers → Webhooks → your endpoint → Signing secret → Reveal. "
                "Leave it empty if you let us create the webhook below: we keep its secret."
            ),
            "whsec_…",
        ),
    }


def fields(
    env: Env,
    stored: StoredDataSet | None,
    submitted: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> list[FormField]:
    by_field = {e.field: e.message for e in errors or []}
    masked = {
        "secret_key": stored.secret_key_hint if stored else None,
        "webhook_signing_secret": stored.signing_secret_hint if stored else None,
    }
    shown = {
        "account_id": stored.account_id if stored else "",
        "publishable_key": stored.publishable_key if stored else "",
    }
    if submitted is not None:
        shown = {k: submitted.get(k, "") for k in shown}
    out = []
    for name, (label, help_, placeholder) in _labels(env).items():
        secret = name in SECRET_FIELDS
        out.append(
            FormField(
                name=name,
                label=label,
                help=help_,
                placeholder=placeholder,
                secret=secret,
                value="" if secret else shown[name],
                masked=masked.get(name),
                error=by_field.get(name),
            )
        )
    return out


def to_input(form: dict[str, str]) -> DataSetInput:
    """Pasted values lose surrounding blanks; an empty secret keeps the stored one, and so
    does any field the form did not send (None: a partial change). An emptied account id or
    publishable key stays empty, to be refused as missing."""
    clean = {k: form[k].strip() if k in form else None for k in FIELD_NAMES}
    return DataSetInput(
        account_id=clean["account_id"],
        publishable_key=clean["publishable_key"],
        secret_key=clean["secret_key"] or None,
        webhook_signing_secret=clean["webhook_signing_secret"] or None,
    )


def report_is_stale(stored: StoredDataSet | None) -> bool:
    """The stored verify report predates the data set's last change (keys or a secret)."""
    return bool(stored and stored.verified_at and stored.updated_at > stored.verified_at)
