"""Our verifier (stdlib HMAC on the raw bytes) must agree with the Stripe SDK's verify_header."""

from __future__ import annotations

import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from merchant_backend.stripe.signature import SignatureRejected, sign, verify

NOW = 1_790_000_000
secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=40).map(
    lambda s: "whsec_" + s
)
bodies = st.text(max_size=300).map(lambda t: t.encode("utf-8"))


def sdk_accepts(body: bytes, header: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body.decode("utf-8"), header, secret, tolerance=None)
    except stripe.SignatureVerificationError:
        return False
    return True


def ours_accepts(body: bytes, header: str, secret: str) -> bool:
    try:
        verify(body, header, [secret], now=NOW, tolerance=300)
    except SignatureRejected as exc:
        assert exc.reason == "bad_signature"
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(body=bodies, secret=secrets, other=secrets, skew=st.integers(-300, 300), data=st.data())
def test_agrees_with_the_sdk_on_genuine_forged_and_tampered_deliveries(
    body: bytes, secret: str, other: str, skew: int, data: st.DataObject
) -> None:
    header = sign(body, secret, NOW + skew)
    assert ours_accepts(body, header, secret) and sdk_accepts(body, header, secret)
    # Signed by another secret, or the body changed after signing: both reject.
    forged = sign(body, other, NOW + skew)
    assert ours_accepts(body, forged, secret) == sdk_accepts(body, forged, secret)
    tampered = body + data.draw(st.text(min_size=1, max_size=5)).encode("utf-8")
    assert not ours_accepts(tampered, header, secret)
    assert not sdk_accepts(tampered, header, secret)
    # A genuine v1 among others (Stripe's roll sends several) still verifies.
    v1 = header.split("v1=", 1)[1]
    several = f"t={NOW + skew},v1={'0' * 64},v0=abc,v1={v1}"
    assert ours_accepts(body, several, secret) and sdk_accepts(body, several, secret)
