"""Rotate the master key: re-encrypt every stored secret with a new key, without downtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merchant_backend.crypto import generate_key, parse_keys, write_key_file
from merchant_backend.errors import NotConfigured
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db


@dataclass(frozen=True)
class KeyRotation:
    reencrypted: int
    # With the key file: where it is and the new key's id. With the environment variable:
    # what the operator does next.
    key_file: str | None = None
    key_id: str | None = None
    next: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.key_file is None:
            return {"reencrypted": self.reencrypted, "next": self.next}
        return {"reencrypted": self.reencrypted, "key_file": self.key_file, "key_id": self.key_id}


def rotate_master_key(rt: Runtime) -> KeyRotation:
    """With the key file: a new key is put first in the file (readers reload it when they meet
    it), every secret is re-encrypted, then the old key is dropped. With
    MERCHANT_BACKEND_MASTER_KEY: the operator has put the new key first and kept the old one
    after a comma (``NotConfigured`` otherwise); every secret is re-encrypted with the first.
    """
    settings = rt.settings
    if settings.master_key is not None:
        if len(parse_keys(settings.master_key.get_secret_value())) < 2:
            raise NotConfigured(
                "MERCHANT_BACKEND_MASTER_KEY",
                "MERCHANT_BACKEND_MASTER_KEY holds one key: set it to 'NEW,OLD' (NEW from "
                "a fresh 32-byte key), restart the service, then run this again",
            )
        ring = rt.keys.get()
        with db.write(rt.engine) as conn:
            changed = datasets.reencrypt_all(conn, ring)
        return KeyRotation(
            changed, next="remove the old key from MERCHANT_BACKEND_MASTER_KEY and restart"
        )
    path = Path(settings.master_key_file)
    old = [k.strip() for k in rt.keys.get_text().splitlines() if k.strip()]
    new = generate_key()
    write_key_file(path, [new, *old])
    ring = rt.keys.reload()
    with db.write(rt.engine) as conn:
        changed = datasets.reencrypt_all(conn, ring)
    # A second pass catches a secret written meanwhile by a process using the old key.
    with db.write(rt.engine) as conn:
        changed += datasets.reencrypt_all(conn, ring)
    write_key_file(path, [new])
    # A writer that loaded the old key just before the file changed may still commit with
    # it; this process still holds the old key in memory, so one last pass moves that too.
    with db.write(rt.engine) as conn:
        changed += datasets.reencrypt_all(conn, ring)
    return KeyRotation(changed, key_file=str(path), key_id=ring.primary_id)
