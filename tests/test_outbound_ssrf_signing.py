"""Where a destination may point (SSRF rules) and the Standard Webhooks signature, checked
against the reference library. Pure: no database, no network (a resolver is passed in)."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from merchant_backend.outbound import retry, signing, ssrf


def resolver(*addresses: str) -> ssrf.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.7", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "private"),  # shared address space (carrier-grade NAT)
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "not a host address"),  # noqa: S104
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("224.0.0.1", "not a host address"),
    ],
)
def test_inward_addresses_are_refused(address: str, why: str) -> None:
    with pytest.raises(ssrf.UnsafeDestination, match=why):
        ssrf.check(
            "https://hooks.example/x", "live", allow_private=False, resolve=resolver(address)
        )


def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_reaches() -> None:
    import ipaddress

    for mapped, reason in (
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
    ):
        assert ssrf.refusal(ipaddress.ip_address(mapped), allow_private=False) == reason
    assert ssrf.refusal(ipaddress.ip_address("::ffff:10.0.0.1"), allow_private=True) is None


def test_a_literal_address_in_the_url_is_checked_too() -> None:
    with pytest.raises(ssrf.UnsafeDestination, match="loopback"):
        ssrf.check("https://127.0.0.1:8443/x", "stage", allow_private=False, resolve=resolver())
    with pytest.raises(ssrf.UnsafeDestination, match="metadata"):
        ssrf.check("http://[fd00:ec2::254]/", "stage", allow_private=True, resolve=resolver())


def test_one_inward_answer_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(ssrf.UnsafeDestination, match=r"10\.0\.0\.1 is a private"):
        ssrf.check(
            "https://hooks.example/x",
            "live",
            allow_private=False,
            resolve=resolver("93.184.216.34", "10.0.0.1"),
        )


def test_the_operator_may_allow_private_addresses_but_never_metadata() -> None:
    for address in ("127.0.0.1", "10.0.0.7", "169.254.10.10", "fd12::1"):
        target = ssrf.check(
            "https://internal.example/x", "live", allow_private=True, resolve=resolver(address)
        )
        assert target.address == address
    with pytest.raises(ssrf.UnsafeDestination, match="metadata"):
        ssrf.check(
            "https://internal.example/x",
            "live",
            allow_private=True,
            resolve=resolver("169.254.169.254"),
        )


def test_a_public_url_is_pinned_to_the_address_that_was_checked() -> None:
    target = ssrf.check(
        "https://hooks.example:8443/in?shop=1",
        "live",
        allow_private=False,
        resolve=resolver("93.184.216.34", "2606:2800::1"),
    )
    assert target == ssrf.Target(
        scheme="https", host="hooks.example", port=8443, path="/in?shop=1", address="93.184.216.34"
    )


@pytest.mark.parametrize(
    ("url", "env", "why"),
    [
        ("http://hooks.example/x", "live", "live destination must use https"),
        ("ftp://hooks.example/x", "stage", "must start with https"),
        ("https://user:pw@hooks.example/x", "stage", "user name or password"),
        ("https:///x", "stage", "no host"),
        ("https://hooks.example/x#frag", "stage", "fragment"),
        ("https://hooks.example:99999/x", "stage", "not a URL"),
        ("https://hooks.example/" + "a" * 2000, "stage", "longer than 2000"),
    ],
)
def test_urls_that_are_refused(url: str, env: str, why: str) -> None:
    with pytest.raises(ssrf.UnsafeDestination, match=why):
        ssrf.check(url, env, allow_private=True, resolve=resolver("93.184.216.34"))


def test_plain_http_is_allowed_in_stage() -> None:
    target = ssrf.check(
        "http://hooks.example/x", "stage", allow_private=False, resolve=resolver("93.184.216.34")
    )
    assert (target.scheme, target.port) == ("http", 80)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(ssrf.UnsafeDestination, match="does not resolve"):
        ssrf.check("https://nowhere.example/", "live", allow_private=False, resolve=fails)
    with pytest.raises(ssrf.UnsafeDestination, match="does not resolve"):
        ssrf.check("https://nowhere.example/", "live", allow_private=False, resolve=resolver())


# --- Standard Webhooks signatures, checked by the reference library --------------------------


def test_our_signature_verifies_with_the_reference_library() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"id":"msg_1","type":"test"}'
    now = int(time.time())
    headers = signing.headers(secret, "msg_1", now, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(secret).verify(body, headers) == {"id": "msg_1", "type": "test"}
    # Another secret, another body, another id: refused by the reference library.
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"test", b"tesT"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})


def test_secrets_that_are_not_standard_webhooks_secrets_are_refused() -> None:
    for bad in ("sk_test_123", "whsec_not*base64", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(signing.BadSecret):
            signing.key_of(bad)


def test_the_retry_schedule() -> None:
    assert retry.delay(1, 5, 0.0) == 5
    assert retry.delay(2, 5, 0.0) == 10
    assert retry.delay(3, 5, 0.999) == pytest.approx(20 * 1.1998)
    assert retry.delay(30, 5, 0.0) == retry.MAX_DELAY
    # Given up once the next try would fall beyond the window after the first attempt.
    assert (
        retry.next_attempt(first_attempt_at=0, at=10, attempts=2, base=5, window=100, rand=0) == 20
    )
    assert (
        retry.next_attempt(first_attempt_at=0, at=95, attempts=2, base=5, window=100, rand=0)
        is None
    )
    # With the defaults, about three days of tries.
    t, attempts = 0.0, 1
    while (
        nxt := retry.next_attempt(
            first_attempt_at=0, at=t, attempts=attempts, base=5, window=3 * 86400, rand=0.5
        )
    ) is not None:
        t, attempts = nxt, attempts + 1
    assert 2.5 * 86400 < t <= 3 * 86400
    assert 15 <= attempts <= 30
