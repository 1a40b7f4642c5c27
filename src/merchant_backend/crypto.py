"""Encryption of stored secrets (AES-256-GCM) with a rotatable master keyring.

A ciphertext is ``mb1:<key id>:<base64url(nonce || ciphertext+tag)>``. The key id is a short
hash of the key, so a reader finds the right key without trying them all, and rotation can
re-encrypt row by row while readers accept both keys. The associated data binds a ciphertext
to its merchant, environment and field: copied into another row it no longer decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "mb1"
NONCE_BYTES = 12


class MasterKeyError(Exception):
    """The master key is missing, malformed or does not fit the stored data."""


class DecryptionError(Exception):
    """A stored secret could not be decrypted (wrong key, wrong row, or tampered)."""


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key() -> str:
    return _b64e(AESGCM.generate_key(bit_length=256))


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"merchant-backend key id" + key).hexdigest()[:12]


def parse_keys(text: str) -> list[bytes]:
    """Keys separated by commas or newlines; the first is the one that encrypts."""
    keys: list[bytes] = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            raw = _b64d(part)
        except (ValueError, TypeError) as exc:
            raise MasterKeyError("master key is not base64url text") from exc
        if len(raw) != 32:
            raise MasterKeyError("master key must be 32 bytes (base64url of 32 random bytes)")
        keys.append(raw)
    if not keys:
        raise MasterKeyError("master key is empty")
    return keys


@dataclass(frozen=True)
class Keyring:
    keys: tuple[bytes, ...]

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    def _by_id(self) -> dict[str, bytes]:
        return {key_id(k): k for k in self.keys}

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext.encode("utf-8"), aad.encode())
        return f"{PREFIX}:{self.primary_id}:{_b64e(nonce + sealed)}"

    def can_decrypt(self, token: str) -> bool:
        parts = token.split(":")
        return len(parts) == 3 and parts[1] in self._by_id()

    def decrypt(self, token: str, aad: str) -> str:
        parts = token.split(":")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise DecryptionError("stored secret has an unknown format")
        key = self._by_id().get(parts[1])
        if key is None:
            raise DecryptionError(
                "stored secret was encrypted with a master key this process does not have"
            )
        blob = _b64d(parts[2])
        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
        except InvalidTag as exc:
            raise DecryptionError(
                "stored secret does not belong to this row or was altered"
            ) from exc
        return plain.decode("utf-8")

    def is_primary(self, token: str) -> bool:
        return token.split(":")[1:2] == [self.primary_id]


def secret_aad(merchant_id: str, env: str, field: str) -> str:
    return f"merchant-backend/{merchant_id}/{env}/{field}"


def _write_private(path: Path, keys: Iterable[str]) -> None:
    # Created with mode 0600 from the start (never widened), and fsynced before it is published.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _tmp_beside(path: Path) -> Path:
    # Unique per writer, so two processes never write into the same temporary file; the
    # ".key.tmp" ending keeps a leftover of a crash out of git (.gitignore).
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.key.tmp")


def write_key_file(path: Path, keys: Iterable[str]) -> None:
    """Replace the key file atomically, mode 0600."""
    tmp = _tmp_beside(path)
    _write_private(tmp, keys)
    os.replace(tmp, path)


def _create_key_file(path: Path) -> None:
    """Create the key file unless it exists; of two processes racing, both end up with one key.

    ``os.link`` fails if the name exists, so a second process can never replace a key the
    first one may already have used to encrypt.
    """
    tmp = _tmp_beside(path)
    _write_private(tmp, [generate_key()])
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_or_create_key_file(path: Path) -> str:
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise MasterKeyError(
            f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
        )
    return path.read_text()


# The part of a secret that only says what kind it is.
_KINDS = (
    *(f"{kind}_{mode}_" for kind in ("sk", "rk", "pk") for mode in ("test", "live")),
    "whsec_",
    "mbt_",
    "mbs_",
)


def mask(secret: str | None) -> str | None:
    """``sk_test_…4242``: the kind of key and its last four characters, never more."""
    if not secret:
        return None
    prefix = next((k for k in _KINDS if secret.startswith(k)), "")
    # Short values show no tail: four characters of a short secret are too much of it.
    tail = secret[-4:] if len(secret) >= len(prefix) + 16 else ""
    return f"{prefix}…{tail}"


def new_token(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def token_hash(token: str) -> str:
    # API tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
