"""Standard Webhooks signing (``standard-webhooks/standard-webhooks``, spec v1). Pure.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is those bytes. A message is
signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 and sent as
``webhook-signature: v1,<base64>``. The id stays the same on every retry of a message, so a
receiver can drop what it has already handled; the timestamp is that of the attempt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32


class BadSecret(ValueError):
    """Not a ``whsec_`` secret with a base64 key."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise BadSecret("a signing secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except ValueError as exc:
        raise BadSecret("a signing secret is whsec_ followed by base64") from exc
    if len(key) < 16:
        raise BadSecret("a signing secret holds at least 16 bytes")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
