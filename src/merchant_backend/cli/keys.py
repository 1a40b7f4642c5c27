"""``rotate-master-key``: re-encrypt every stored secret with a new master key."""

from __future__ import annotations

from merchant_backend.cli.common import runtime
from merchant_backend.cli.errors import guarded
from merchant_backend.cli.output import out
from merchant_backend.services import keys


@guarded
def rotate_master_key() -> None:
    """Re-encrypt every stored secret with a new master key, without downtime.

    With the key file: a new key is put first in the file (readers reload it when they meet
    it), every secret is re-encrypted, then the old key is dropped. With
    MERCHANT_BACKEND_MASTER_KEY: put the new key first, keep the old one after a comma,
    restart readers, run this, then remove the old key.
    """
    with runtime() as rt:
        out(keys.rotate_master_key(rt).as_json())
