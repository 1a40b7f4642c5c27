"""Outbound destinations: where a merchant (or the operator) wants its changes sent.

A destination belongs to one merchant and environment, or, with no merchant, to the operator:
an installation-wide destination receives every merchant's changes in its environment. Its
signing secret is encrypted at rest like the Stripe secrets, bound to the destination's row.
"""

from __future__ import annotations

import functools
import secrets
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from merchant_backend import clock
from merchant_backend.crypto import Keyring, mask, secret_aad
from merchant_backend.store import sqltext
from merchant_backend.store.schema import outbound_destinations

# Every object type a projection keeps; a destination sends all of them unless told otherwise.
OBJECT_TYPES = ("payment_intent", "customer", "payment_method", "dispute", "account")
INSTALLATION = "*"  # the owner in a secret's associated data when there is no merchant

# The reason kept when a destination is switched off without one (outbound/failures.py reads it).
DISABLED_BY_USER = "disabled by a user"


@dataclass(frozen=True)
class Destination:
    id: str
    merchant_id: str | None
    env: str
    url: str
    description: str
    object_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    secret_hint: str
    failing_since: float | None
    last_success_at: float | None
    created_at: float
    updated_at: float

    def wants(self, object_type: str | None) -> bool:
        return object_type is None or object_type in self.object_types

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "env": self.env,
            "url": self.url,
            "description": self.description,
            "object_types": list(self.object_types),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "secret_hint": self.secret_hint,
            "failing_since": _int(self.failing_since),
            "last_success_at": _int(self.last_success_at),
            "created": int(self.created_at),
            "updated": int(self.updated_at),
        }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _aad(destination_id: str, merchant_id: str | None, env: str) -> str:
    return secret_aad(merchant_id or INSTALLATION, env, f"destination/{destination_id}/secret")


def _to_destination(row: Any) -> Destination:
    return Destination(
        id=row.id,
        merchant_id=row.merchant_id,
        env=row.env,
        url=row.url,
        description=row.description,
        object_types=tuple(t for t in row.object_types.split(",") if t),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        secret_hint=row.secret_hint,
        failing_since=row.failing_since,
        last_success_at=row.last_success_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _owned(merchant_id: str | None, env: str) -> Any:
    owner = (
        outbound_destinations.c.merchant_id.is_(None)
        if merchant_id is None
        else outbound_destinations.c.merchant_id == merchant_id
    )
    return owner & (outbound_destinations.c.env == env)


def create(
    conn: Connection,
    ring: Keyring,
    *,
    merchant_id: str | None,
    env: str,
    url: str,
    description: str,
    object_types: Sequence[str],
    secret: str,
    enabled: bool = True,
) -> Destination:
    destination_id = "dst_" + secrets.token_hex(10)
    at = clock.now()
    conn.execute(
        insert(outbound_destinations).values(
            id=destination_id,
            merchant_id=merchant_id,
            env=env,
            url=url,
            description=description,
            object_types=",".join(object_types),
            enabled=enabled,
            disabled_reason=None,
            secret_enc=ring.encrypt(secret, _aad(destination_id, merchant_id, env)),
            secret_hint=mask(secret) or "",
            created_at=at,
            updated_at=at,
        )
    )
    made = get(conn, merchant_id, env, destination_id)
    assert made is not None
    return made


def get(
    conn: Connection, merchant_id: str | None, env: str, destination_id: str
) -> Destination | None:
    row = conn.execute(
        select(outbound_destinations).where(
            _owned(merchant_id, env), outbound_destinations.c.id == destination_id
        )
    ).first()
    return _to_destination(row) if row else None


def by_id(conn: Connection, destination_id: str) -> Destination | None:
    row = conn.execute(
        select(outbound_destinations).where(outbound_destinations.c.id == destination_id)
    ).first()
    return _to_destination(row) if row else None


def list_owned(conn: Connection, merchant_id: str | None, env: str) -> list[Destination]:
    rows = conn.execute(
        select(outbound_destinations)
        .where(_owned(merchant_id, env))
        .order_by(outbound_destinations.c.created_at, outbound_destinations.c.id)
    )
    return [_to_destination(r) for r in rows]


def count_owned(conn: Connection, merchant_id: str | None, env: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(outbound_destinations).where(_owned(merchant_id, env))
        ).scalar_one()
    )


def targets(conn: Connection, merchant_id: str, env: str) -> list[Destination]:
    """The enabled destinations a change of this merchant and environment goes to: the
    merchant's own and the installation-wide ones.

    Read afresh in the caller's transaction (the worker, for every batch it applies), never
    cached: a destination added, disabled or removed by another process counts from its
    commit on. Run as SQL text (store/sqltext.py), the read costs about what a cache's
    freshness check would (one indexed query), and no process can hold a stale list.
    """
    rows = sqltext.run(conn, _targets_sql(conn.dialect.name), (env, merchant_id))
    return [_to_destination(_Row._make(r)) for r in rows]


def targets_many(
    conn: Connection, data_sets: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[Destination]]:
    """``targets`` of several (merchant, env) data sets in one query: a worker batch spread
    over many merchants reads its destinations once, not once per merchant."""
    if not data_sets:
        return {}
    merchants = sorted({m for m, _ in data_sets})
    envs = sorted({e for _, e in data_sets})
    sql = _targets_many_sql(conn.dialect.name, len(envs), len(merchants))
    found = [_to_destination(_Row._make(r)) for r in sqltext.run(conn, sql, (*envs, *merchants))]
    own: dict[tuple[str, str], list[Destination]] = {}
    wide: dict[str, list[Destination]] = {}
    for dest in found:
        if dest.merchant_id is None:
            wide.setdefault(dest.env, []).append(dest)
        else:
            own.setdefault((dest.merchant_id, dest.env), []).append(dest)
    return {
        (m, e): sorted(own.get((m, e), []) + wide.get(e, []), key=lambda d: d.id)
        for m, e in data_sets
    }


# The driver's rows are plain tuples: named here as the columns selected, for _to_destination.
_Row = namedtuple("_Row", [f.name for f in fields(Destination)])  # type: ignore[misc]
_COLUMNS = ", ".join(_Row._fields)


@functools.cache
def _targets_sql(dialect: str) -> str:
    mark = sqltext.mark(dialect)
    return (
        f"SELECT {_COLUMNS} FROM outbound_destinations "  # noqa: S608 (constants only)
        f"WHERE env = {mark} AND enabled = TRUE AND (merchant_id = {mark} OR merchant_id IS NULL) "
        "ORDER BY id"
    )


@functools.lru_cache(maxsize=256)
def _targets_many_sql(dialect: str, envs: int, merchants: int) -> str:
    return (
        f"SELECT {_COLUMNS} FROM outbound_destinations "  # noqa: S608 (constants only)
        f"WHERE env IN {sqltext.marks(dialect, envs)} AND enabled = TRUE "
        f"AND (merchant_id IN {sqltext.marks(dialect, merchants)} OR merchant_id IS NULL) "
        "ORDER BY id"
    )


def update_(
    conn: Connection,
    destination: Destination,
    *,
    url: str | None = None,
    description: str | None = None,
    object_types: Sequence[str] | None = None,
    enabled: bool | None = None,
    disabled_reason: str | None = None,
) -> Destination:
    """Change what was given. Enabling clears the reason and the failure streak."""
    values: dict[str, Any] = {"updated_at": clock.now()}
    if url is not None:
        values["url"] = url
    if description is not None:
        values["description"] = description
    if object_types is not None:
        values["object_types"] = ",".join(object_types)
    if enabled is True:
        values.update(enabled=True, disabled_reason=None, failing_since=None)
    elif enabled is False:
        values.update(enabled=False, disabled_reason=disabled_reason or DISABLED_BY_USER)
    conn.execute(
        update(outbound_destinations)
        .where(outbound_destinations.c.id == destination.id)
        .values(**values)
    )
    fresh = by_id(conn, destination.id)
    assert fresh is not None
    return fresh


def set_secret(
    conn: Connection, ring: Keyring, destination: Destination, secret: str
) -> Destination:
    at = clock.now()
    conn.execute(
        update(outbound_destinations)
        .where(outbound_destinations.c.id == destination.id)
        .values(
            secret_enc=ring.encrypt(
                secret, _aad(destination.id, destination.merchant_id, destination.env)
            ),
            secret_hint=mask(secret) or "",
            updated_at=at,
        )
    )
    return replace(destination, secret_hint=mask(secret) or "", updated_at=at)


def secret_of(
    ring: Keyring, destination_id: str, merchant_id: str | None, env: str, token: str
) -> str:
    return ring.decrypt(token, _aad(destination_id, merchant_id, env))


def delete_(conn: Connection, destination: Destination) -> bool:
    result = conn.execute(
        delete(outbound_destinations).where(outbound_destinations.c.id == destination.id)
    )
    return bool(result.rowcount)


def record_success(conn: Connection, destination_id: str, at: float) -> None:
    conn.execute(
        update(outbound_destinations)
        .where(outbound_destinations.c.id == destination_id)
        .values(last_success_at=at, failing_since=None)
    )


def record_failure(
    conn: Connection, destination_id: str, at: float, *, disable_after: float, reason: str
) -> bool:
    """Note a failed delivery; disable the destination once every delivery has failed for
    ``disable_after`` seconds. Returns whether this call disabled it."""
    table = outbound_destinations
    conn.execute(
        update(table)
        .where(table.c.id == destination_id, table.c.failing_since.is_(None))
        .values(failing_since=at)
    )
    result = conn.execute(
        update(table)
        .where(
            table.c.id == destination_id,
            table.c.enabled.is_(True),
            table.c.failing_since <= at - disable_after,
        )
        .values(enabled=False, disabled_reason=reason, updated_at=at)
    )
    return bool(result.rowcount)


def reencrypt_all(conn: Connection, ring: Keyring) -> int:
    """Re-encrypt every destination secret not yet under the primary key (master key rotation)."""
    changed = 0
    for row in conn.execute(select(outbound_destinations)).all():
        if ring.is_primary(row.secret_enc):
            continue
        aad = _aad(row.id, row.merchant_id, row.env)
        conn.execute(
            update(outbound_destinations)
            .where(outbound_destinations.c.id == row.id)
            .values(secret_enc=ring.encrypt(ring.decrypt(row.secret_enc, aad), aad))
        )
        changed += 1
    return changed
