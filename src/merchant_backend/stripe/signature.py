"""``Stripe-Signature`` checks, as pure functions of (body, header, secrets, now).

The header is parsed strictly (exactly one ``t=``, at least one ``v1=``; other schemes such as
``v0`` are ignored, as Stripe documents), then each ``v1`` is compared in constant time with
HMAC-SHA256 of ``t.body`` under each valid secret. That is the Stripe SDK's check
(``WebhookSignature.verify_header``) computed with the standard library's one-shot
``hmac.digest`` on the raw bytes: the SDK's path (lazy module attribute, pure-Python HMAC
object, re-parsing the header, str round trip of the body) cost half the CPU of verification at
thousands of deliveries a second. Signing (``sign``, for tests and the benchmark) stays the
SDK's, so every test checks this verifier against Stripe's own signer. The SDK only rejects
*old* timestamps; we also reject ones from the future, since a clock that far ahead means a
replayable signature.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from typing import NamedTuple

import stripe

from merchant_backend.errors import EventRejected

_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


class SignatureRejected(EventRejected):
    """The signature does not prove that Stripe sent this body (an ``EventRejected``)."""


class ParsedHeader(NamedTuple):
    timestamp: int
    signatures: tuple[str, ...]


def parse_header(header: str | None) -> ParsedHeader:
    if not header:
        raise SignatureRejected("missing_signature", "missing Stripe-Signature header")
    if len(header) > 4096:
        raise SignatureRejected("malformed_signature", "Stripe-Signature header is too long")
    timestamps: list[str] = []
    v1: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value:
            raise SignatureRejected("malformed_signature", "Stripe-Signature has a malformed part")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            v1.append(value)
    if len(timestamps) != 1:
        raise SignatureRejected(
            "malformed_signature", "Stripe-Signature must carry exactly one timestamp (t=)"
        )
    # ASCII digits only (str.isdigit() alone also takes '²' or '٣', which int() then refuses),
    # at most 12 of them.
    stamp = timestamps[0]
    if not (len(stamp) <= 12 and stamp.isascii() and stamp.isdigit()):
        raise SignatureRejected("malformed_signature", "Stripe-Signature timestamp is not a number")
    if not v1:
        raise SignatureRejected("malformed_signature", "Stripe-Signature has no v1 signature")
    if not all(_HEX.fullmatch(sig) for sig in v1):
        # hmac.compare_digest refuses non-ASCII text (TypeError): a v1 is hex, nothing else.
        raise SignatureRejected("malformed_signature", "Stripe-Signature v1 is not hexadecimal")
    return ParsedHeader(int(stamp), tuple(v1))


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int,
) -> ParsedHeader:
    """Return the parsed header if one of ``secrets`` signed ``body``; raise otherwise."""
    parsed = parse_header(header)
    if not secrets:
        raise SignatureRejected(
            "no_signing_secret",
            "no webhook signing secret is stored for this environment: paste it or provision "
            "the webhook",
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("not_an_event", "body is not UTF-8 text") from exc
    # Stripe signs the UTF-8 text "{t}.{body}"; the body's bytes are that text's encoding.
    signed = b"%d.%b" % (parsed.timestamp, body)
    matched = False
    for secret in secrets:
        expected = hmac.digest(secret.encode("utf-8"), signed, "sha256").hex()
        if any(hmac.compare_digest(expected, given) for given in parsed.signatures):
            matched = True
            break
    if not matched:
        raise SignatureRejected("bad_signature", "no valid signature for this body")
    if abs(now - parsed.timestamp) > tolerance:
        raise SignatureRejected(
            "timestamp_out_of_tolerance",
            f"signature timestamp is more than {tolerance} s away from the server's clock",
        )
    return parsed


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header Stripe would send; used by tests, benchmarks and fake servers."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp
    )
    return header
