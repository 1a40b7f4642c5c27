"""The Stripe data sets: one per merchant and environment, secrets encrypted at rest.

Validation happens before anything is written, and all fields are written in one statement,
so a rejected data set leaves what was stored untouched. A partial change (only the fields
given) is merged with what is stored first and then validated as a whole.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from merchant_backend import clock
from merchant_backend.crypto import DecryptionError, Keyring, mask, secret_aad
from merchant_backend.errors import FieldError, InvalidInput, NotFound
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.store import destinations as destination_store
from merchant_backend.store import web_reveals
from merchant_backend.store.schema import stripe_datasets
from merchant_backend.validation import (
    DataSetInput,
    Env,
    check_signing_secret,
    validate_data_set,
)

MAX_ROLL_SECONDS = 86400
SECRET_FIELDS = ("secret_key", "signing_secret", "previous_signing_secret")


@dataclass(frozen=True)
class StoredDataSet:
    """A data set as it may be shown: secrets only as hints."""

    merchant_id: str
    env: str
    account_id: str
    publishable_key: str
    secret_key_hint: str
    signing_secret_hint: str | None
    previous_signing_secret_hint: str | None
    previous_signing_secret_expires_at: float | None
    webhook_endpoint_id: str | None
    verify_report: dict[str, Any] | None
    verified_at: float | None
    last_delivery_at: float | None
    version: int
    created_at: float
    updated_at: float

    def health(self, at: float | None = None) -> dict[str, Any]:
        """The data set's state for the API and the pages (whose templates translate the
        ``message``: the API's stays English)."""
        at = clock.now() if at is None else at
        missing = [] if self.signing_secret_hint else ["webhook_signing_secret"]
        if missing:
            status = "incomplete"
            message = N_(
                "the webhook signing secret is missing: create the webhook in Stripe (or let us "
                "create it) and paste its signing secret"
            )
        elif self.verify_report is None:
            # The web page's button is "Verify connection", the CLI's command "stripe verify".
            status = "unverified"
            message = N_("not verified against Stripe yet: verify the connection")
        else:
            status = str(self.verify_report.get("status", "unverified"))
            message = str(self.verify_report.get("summary", ""))
        previous_active = (
            self.previous_signing_secret_expires_at is not None
            and self.previous_signing_secret_expires_at > at
        )
        return {
            "status": status,
            "message": message,
            "missing": missing,
            "verified_at": _int(self.verified_at),
            "last_delivery_at": _int(self.last_delivery_at),
            "previous_signing_secret_active": previous_active,
            "report": self.verify_report,
        }

    def as_json(self, public_url: str) -> dict[str, Any]:
        at = clock.now()
        previous = None
        expires = self.previous_signing_secret_expires_at
        if self.previous_signing_secret_hint and expires is not None and expires > at:
            previous = {"masked": self.previous_signing_secret_hint, "expires_at": int(expires)}
        return {
            "merchant_id": self.merchant_id,
            "env": self.env,
            "account_id": self.account_id,
            "publishable_key": self.publishable_key,
            "secret_key": self.secret_key_hint,
            "webhook_signing_secret": self.signing_secret_hint,
            "previous_signing_secret": previous,
            "webhook_url": webhook_url(public_url, self.merchant_id, self.env),
            "webhook_endpoint_id": self.webhook_endpoint_id,
            "health": self.health(at),
            "created": int(self.created_at),
            "updated": int(self.updated_at),
        }


@dataclass(frozen=True)
class DataSetSecrets:
    """Decrypted secrets; never logged, never returned by the API."""

    account_id: str
    publishable_key: str
    secret_key: str
    signing_secret: str | None
    previous_signing_secret: str | None
    previous_signing_secret_expires_at: float | None
    version: int

    def __repr__(self) -> str:
        return f"DataSetSecrets(account_id={self.account_id!r}, secrets=<hidden>)"

    def signing_secrets(self, at: float) -> list[str]:
        out = [self.signing_secret] if self.signing_secret else []
        if (
            self.previous_signing_secret
            and self.previous_signing_secret_expires_at is not None
            and self.previous_signing_secret_expires_at > at
        ):
            out.append(self.previous_signing_secret)
        return out


def webhook_url(public_url: str, merchant_id: str, env: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/stripe/{merchant_id}/{env}"


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _row_to_stored(row: Any) -> StoredDataSet:
    return StoredDataSet(
        merchant_id=row.merchant_id,
        env=row.env,
        account_id=row.account_id,
        publishable_key=row.publishable_key,
        secret_key_hint=row.secret_key_hint,
        signing_secret_hint=row.signing_secret_hint,
        previous_signing_secret_hint=row.previous_signing_secret_hint,
        previous_signing_secret_expires_at=row.previous_signing_secret_expires_at,
        webhook_endpoint_id=row.webhook_endpoint_id,
        verify_report=json.loads(row.verify_report) if row.verify_report else None,
        verified_at=row.verified_at,
        last_delivery_at=row.last_delivery_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _where(merchant_id: str, env: str) -> Any:
    return (stripe_datasets.c.merchant_id == merchant_id) & (stripe_datasets.c.env == env)


def get(conn: Connection, merchant_id: str, env: str) -> StoredDataSet | None:
    row = conn.execute(select(stripe_datasets).where(_where(merchant_id, env))).first()
    return _row_to_stored(row) if row else None


def list_for_merchant(conn: Connection, merchant_id: str) -> list[StoredDataSet]:
    rows = conn.execute(select(stripe_datasets).where(stripe_datasets.c.merchant_id == merchant_id))
    return [_row_to_stored(r) for r in rows]


def list_keys(conn: Connection) -> list[tuple[str, str]]:
    """Every (merchant id, env) that has a data set, in a stable order."""
    rows = conn.execute(
        select(stripe_datasets.c.merchant_id, stripe_datasets.c.env).order_by(
            stripe_datasets.c.merchant_id, stripe_datasets.c.env
        )
    )
    return [(r[0], r[1]) for r in rows]


def _enc(ring: Keyring, merchant_id: str, env: str, field: str, value: str) -> str:
    return ring.encrypt(value, secret_aad(merchant_id, env, field))


def save(
    conn: Connection,
    ring: Keyring,
    merchant_id: str,
    env: Env,
    data: DataSetInput,
    *,
    partial: bool = False,
) -> StoredDataSet:
    """Validate and store a data set. Secrets left out (None) keep their stored values; with
    ``partial`` every field left out does (``stripe set``, PATCH, the web form).

    The data set as it would be after the change is validated as a whole, before anything is
    written: a rejected change stores nothing.
    """
    existing = conn.execute(select(stripe_datasets).where(_where(merchant_id, env))).first()
    if partial and existing is not None:
        data = replace(
            data,
            account_id=existing.account_id if data.account_id is None else data.account_id,
            publishable_key=(
                existing.publishable_key if data.publishable_key is None else data.publishable_key
            ),
        )
    errors = validate_data_set(data, env, require_secret_key=existing is None)
    if errors:
        raise InvalidInput(errors)
    assert data.account_id is not None and data.publishable_key is not None
    at = clock.now()
    values: dict[str, Any] = {
        "account_id": data.account_id,
        "publishable_key": data.publishable_key,
        "updated_at": at,
    }
    if data.secret_key is not None:
        values["secret_key_enc"] = _enc(ring, merchant_id, env, "secret_key", data.secret_key)
        values["secret_key_hint"] = mask(data.secret_key)
    if data.webhook_signing_secret is not None:
        values["signing_secret_enc"] = _enc(
            ring, merchant_id, env, "signing_secret", data.webhook_signing_secret
        )
        values["signing_secret_hint"] = mask(data.webhook_signing_secret)
    if existing is None:
        conn.execute(
            insert(stripe_datasets).values(
                merchant_id=merchant_id, env=env, created_at=at, version=1, **values
            )
        )
    else:
        changed = (
            data.account_id != existing.account_id
            or data.publishable_key != existing.publishable_key
            or data.secret_key is not None
            or data.webhook_signing_secret is not None
        )
        if changed:
            # A report about other keys would show a connection as healthy that nobody checked.
            values["verify_report"] = None
            values["verified_at"] = None
        conn.execute(
            update(stripe_datasets)
            .where(_where(merchant_id, env))
            .values(version=stripe_datasets.c.version + 1, **values)
        )
    stored = get(conn, merchant_id, env)
    assert stored is not None
    return stored


def set_signing_secret(
    conn: Connection,
    ring: Keyring,
    merchant_id: str,
    env: str,
    secret: str,
    *,
    endpoint_id: str | None = None,
) -> None:
    """Store a signing secret Stripe handed us (webhook provisioning)."""
    values: dict[str, Any] = {
        "signing_secret_enc": _enc(ring, merchant_id, env, "signing_secret", secret),
        "signing_secret_hint": mask(secret),
        "updated_at": clock.now(),
        "version": stripe_datasets.c.version + 1,
    }
    if endpoint_id is not None:
        values["webhook_endpoint_id"] = endpoint_id
    conn.execute(update(stripe_datasets).where(_where(merchant_id, env)).values(**values))


def set_webhook_endpoint_id(conn: Connection, merchant_id: str, env: str, endpoint_id: str) -> None:
    """Remember which Stripe webhook endpoint serves this data set (its secret is unchanged)."""
    conn.execute(
        update(stripe_datasets)
        .where(_where(merchant_id, env))
        .values(webhook_endpoint_id=endpoint_id, updated_at=clock.now())
    )


def roll_signing_secret(
    conn: Connection,
    ring: Keyring,
    merchant_id: str,
    env: str,
    new_secret: str,
    old_valid_for: int = MAX_ROLL_SECONDS,
) -> StoredDataSet:
    """Make ``new_secret`` current; keep the old one valid for ``old_valid_for`` seconds."""
    errors: list[FieldError] = []
    problem = check_signing_secret(new_secret)
    if problem:
        errors.append(FieldError("webhook_signing_secret", problem))
    if not 0 <= old_valid_for <= MAX_ROLL_SECONDS:
        errors.append(
            FieldError(
                "old_valid_for",
                _("the old secret may stay valid 0 to %(most)s seconds (24 h), as in Stripe's roll")
                % {"most": MAX_ROLL_SECONDS},
            )
        )
    row = conn.execute(select(stripe_datasets).where(_where(merchant_id, env))).first()
    if row is None:
        raise NotFound(f"no {env} data set for {merchant_id}: store one first (stripe set)")
    if errors:
        raise InvalidInput(errors)
    at = clock.now()
    values: dict[str, Any] = {
        "signing_secret_enc": _enc(ring, merchant_id, env, "signing_secret", new_secret),
        "signing_secret_hint": mask(new_secret),
        "updated_at": at,
        "version": stripe_datasets.c.version + 1,
    }
    if row.signing_secret_enc and old_valid_for > 0:
        old = ring.decrypt(row.signing_secret_enc, secret_aad(merchant_id, env, "signing_secret"))
        values["previous_signing_secret_enc"] = _enc(
            ring, merchant_id, env, "previous_signing_secret", old
        )
        values["previous_signing_secret_hint"] = row.signing_secret_hint
        values["previous_signing_secret_expires_at"] = at + old_valid_for
    else:
        values["previous_signing_secret_enc"] = None
        values["previous_signing_secret_hint"] = None
        values["previous_signing_secret_expires_at"] = None
    conn.execute(update(stripe_datasets).where(_where(merchant_id, env)).values(**values))
    stored = get(conn, merchant_id, env)
    assert stored is not None
    return stored


def delete_(conn: Connection, merchant_id: str, env: str) -> bool:
    result = conn.execute(delete(stripe_datasets).where(_where(merchant_id, env)))
    return bool(result.rowcount)


def secrets(conn: Connection, ring_for: Any, merchant_id: str, env: str) -> DataSetSecrets | None:
    """Decrypt a data set's secrets. ``ring_for(token)`` returns a keyring that can read it."""
    row = conn.execute(select(stripe_datasets).where(_where(merchant_id, env))).first()
    if row is None:
        return None

    def dec(token: str | None, field: str) -> str | None:
        if not token:
            return None
        ring: Keyring = ring_for(token)
        try:
            return ring.decrypt(token, secret_aad(merchant_id, env, field))
        except DecryptionError as exc:
            # Say which secret, so an operator knows where to look (never the value).
            raise DecryptionError(f"{field} of {merchant_id}/{env}: {exc}") from exc

    secret_key = dec(row.secret_key_enc, "secret_key")
    assert secret_key is not None
    return DataSetSecrets(
        account_id=row.account_id,
        publishable_key=row.publishable_key,
        secret_key=secret_key,
        signing_secret=dec(row.signing_secret_enc, "signing_secret"),
        previous_signing_secret=dec(row.previous_signing_secret_enc, "previous_signing_secret"),
        previous_signing_secret_expires_at=row.previous_signing_secret_expires_at,
        version=row.version,
    )


def record_verify_report(
    conn: Connection, merchant_id: str, env: str, report: dict[str, Any]
) -> None:
    conn.execute(
        update(stripe_datasets)
        .where(_where(merchant_id, env))
        .values(verify_report=json.dumps(report), verified_at=clock.now())
    )


def record_delivery(conn: Connection, merchant_id: str, env: str, at: float) -> None:
    conn.exec_driver_sql(_record_delivery_sql(conn.dialect.name), (at, merchant_id, env, at))


def record_delivery_dbapi(cursor: Any, dialect: str, merchant_id: str, env: str, at: float) -> None:
    """``record_delivery`` on a driver cursor (the inbox's group commit, see ``db.raw_write``)."""
    cursor.execute(_record_delivery_sql(dialect), (at, merchant_id, env, at))


@functools.cache
def _record_delivery_sql(dialect: str) -> str:
    # Never backwards: two processes' group commits may finish in either order.
    mark = "?" if dialect == "sqlite" else "%s"
    return (
        f"UPDATE stripe_datasets SET last_delivery_at = {mark} "  # noqa: S608 (no input in it)
        f"WHERE merchant_id = {mark} AND env = {mark} "
        f"AND (last_delivery_at IS NULL OR last_delivery_at < {mark})"
    )


def reencrypt_all(conn: Connection, ring: Keyring) -> int:
    """Re-encrypt every secret not yet under the primary key; returns how many rows changed.

    Readers never wait for it (WAL on SQLite, MVCC on PostgreSQL) and always find a ciphertext
    that a ring holding both keys opens; writers wait only for this one short transaction.
    """
    changed = 0
    rows = conn.execute(select(stripe_datasets)).all()
    for row in rows:
        values: dict[str, Any] = {}
        for field in SECRET_FIELDS:
            token = getattr(row, f"{field}_enc")
            if token and not ring.is_primary(token):
                aad = secret_aad(row.merchant_id, row.env, field)
                values[f"{field}_enc"] = ring.encrypt(ring.decrypt(token, aad), aad)
        if values:
            conn.execute(
                update(stripe_datasets).where(_where(row.merchant_id, row.env)).values(**values)
            )
            changed += 1
    # The outbound destinations' signing secrets are stored secrets too, and so are the new
    # API tokens waiting to be shown once on the web.
    changed += destination_store.reencrypt_all(conn, ring)
    return changed + web_reveals.reencrypt_all(conn, ring)
