"""The Stripe data set of a merchant and environment: save, roll its signing secret, delete.

After every change the webhook's credential cache of this process forgets the data set, so the
next delivery is checked against what is stored now (other processes re-read on a failed
signature, and their entries expire within seconds).
"""

from __future__ import annotations

from merchant_backend import logs
from merchant_backend.errors import NotFound
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.store.datasets import MAX_ROLL_SECONDS as MAX_ROLL_SECONDS
from merchant_backend.store.datasets import StoredDataSet as StoredDataSet
from merchant_backend.store.datasets import webhook_url as webhook_url
from merchant_backend.validation import DataSetInput, Env

log = logs.get("merchant_backend.services")


def get_data_set(rt: Runtime, merchant_id: str, env: str) -> StoredDataSet | None:
    with db.read(rt.engine) as conn:
        return datasets.get(conn, merchant_id, env)


def save_data_set(
    rt: Runtime, merchant_id: str, env: Env, data: DataSetInput, *, partial: bool = False
) -> StoredDataSet:
    """Validate and store (``InvalidInput`` with every field's problem); secrets left out keep
    their stored values, and with ``partial`` every field left out does."""
    ring = rt.keys.get()
    with db.write(rt.engine) as conn:
        stored = datasets.save(conn, ring, merchant_id, env, data, partial=partial)
    rt.secret_cache.invalidate(merchant_id, env)
    return stored


def change_data_set(rt: Runtime, merchant_id: str, env: Env, data: DataSetInput) -> StoredDataSet:
    """Change only the fields given on a data set that exists (``NotFound`` otherwise): the
    data set after the change is validated as a whole, and a refused change stores nothing."""
    ring = rt.keys.get()
    with db.write(rt.engine) as conn:
        if datasets.get(conn, merchant_id, env) is None:
            raise NotFound(f"no {env} data set for this merchant yet: store one with PUT")
        stored = datasets.save(conn, ring, merchant_id, env, data, partial=True)
    rt.secret_cache.invalidate(merchant_id, env)
    return stored


def roll_signing_secret(
    rt: Runtime,
    merchant_id: str,
    env: str,
    new_secret: str,
    old_valid_for: int = MAX_ROLL_SECONDS,
) -> StoredDataSet:
    """Make ``new_secret`` current and keep the old one valid for ``old_valid_for`` seconds
    (``NotFound`` without a data set, ``InvalidInput`` for a bad secret or duration)."""
    ring = rt.keys.get()
    with db.write(rt.engine) as conn:
        stored = datasets.roll_signing_secret(
            conn, ring, merchant_id, env, new_secret, old_valid_for
        )
    rt.secret_cache.invalidate(merchant_id, env)
    return stored


def delete_data_set(rt: Runtime, merchant_id: str, env: str) -> bool:
    """Delete the data set; False if there was none. Webhooks for it are refused from now on."""
    with db.write(rt.engine) as conn:
        deleted = datasets.delete_(conn, merchant_id, env)
    rt.secret_cache.invalidate(merchant_id, env)
    return deleted
