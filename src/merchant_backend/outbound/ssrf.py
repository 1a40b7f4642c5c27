"""Which URLs a destination may point at, and the address a delivery connects to.

The order of the checks:
1. the URL: ``https`` (``http`` only in stage), a host, no user name or password in it;
2. every address the host resolves to must be public: not loopback, private, link-local,
   shared (CGNAT), reserved, multicast or unspecified, and never a cloud metadata address.
   ``MERCHANT_BACKEND_OUTBOUND_ALLOW_PRIVATE`` lets the operator allow all of those except
   the metadata addresses, for their own internal systems.

The same checks run when a destination is registered and again before every delivery, and
the delivery connects to the address that was checked (never resolving the name a second
time), so a DNS answer that changes after the check cannot steer a delivery inward. Redirects
are never followed (see ``outbound.http``).

A refusal says why in English (the API's and the CLI's message) and carries a ``reason`` code
and its ``values``: the web pages turn those into a sentence in the reader's language
(``web.destination_messages``), as ``money.explain`` does for amounts.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from merchant_backend.i18n import N_

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Instance metadata services: AWS/GCP/Azure/OpenStack (IPv4 and AWS's IPv6), Alibaba, Azure's
# wire server. Refused even when private addresses are allowed.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)


# Why a URL is refused: reason code → the English message (``%(name)s`` filled from values).
REASONS = {
    "too_long": N_("the URL is longer than 2000 characters"),
    "not_a_url": N_("not a URL: %(detail)s"),
    "scheme": N_("the URL must start with https://"),
    "live_needs_https": N_("a live destination must use https://"),
    "no_host": N_("the URL has no host"),
    "credentials": N_("the URL must not carry a user name or password"),
    "fragment": N_("the URL must not have a #fragment"),
    "unresolved_because": N_("%(host)s does not resolve: %(detail)s"),
    "unresolved": N_("%(host)s does not resolve"),
    "metadata": N_("%(host)s resolves to %(address)s is a cloud metadata address"),
    "not_host_address": N_("%(host)s resolves to %(address)s is not a host address"),
    "loopback": N_("%(host)s resolves to %(address)s is a loopback address"),
    "link_local": N_("%(host)s resolves to %(address)s is a link-local address"),
    "private": N_("%(host)s resolves to %(address)s is a private address"),
}


class UnsafeDestination(ValueError):
    """The URL or an address it resolves to may not receive notifications: ``str()`` is the
    English message, ``reason`` (a key of ``REASONS``) and ``values`` what it was made of."""

    def __init__(self, reason: str, **values: str) -> None:
        super().__init__(REASONS[reason] % values if values else REASONS[reason])
        self.reason = reason
        self.values = values


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_host(host: str, port: int) -> list[str]:
    """The resolver ``check`` uses unless given one (a seam: tests have no DNS)."""
    return system_resolver(host, port)


def check_url(url: str, env: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL."""
    if len(url) > 2000:
        raise UnsafeDestination("too_long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination("not_a_url", detail=str(exc)) from exc
    if parts.scheme not in ("https", "http"):
        raise UnsafeDestination("scheme")
    if parts.scheme == "http" and env == "live":
        raise UnsafeDestination("live_needs_https")
    if not parts.hostname:
        raise UnsafeDestination("no_host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("credentials")
    if parts.fragment:
        raise UnsafeDestination("fragment")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default, path


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:10.0.0.1`` as the IPv4 address it reaches, ``10.0.0.1``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a delivery may not go to ``address`` (a key of ``REASONS``), or None if it may."""
    address = _unmapped(address)
    if address in METADATA:
        return "metadata"
    if address.is_multicast or address.is_unspecified:
        return "not_host_address"
    if allow_private:
        return None
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_private or not address.is_global:
        return "private"
    return None


def check(url: str, env: str, *, allow_private: bool, resolve: Resolver | None = None) -> Target:
    """Check a URL and every address its host resolves to; the target pins the first."""
    scheme, host, port, path = check_url(url, env)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolve or resolve_host)(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeDestination("unresolved_because", host=host, detail=str(exc)) from exc
    if not addresses:
        raise UnsafeDestination("unresolved", host=host)
    for text in addresses:
        # ::ffff:10.0.0.1 is judged, and named in the refusal, as 10.0.0.1.
        address = _unmapped(ipaddress.ip_address(text.split("%", 1)[0]))
        why = refusal(address, allow_private=allow_private)
        if why is not None:
            raise UnsafeDestination(why, host=host, address=str(address))
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])
