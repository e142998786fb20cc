"""Which network addresses a customer's status_callback may reach (pure; resolution is injected).

A callback URL is the customer's, so it may name anything: the instance metadata service (169.254.169.254), the
VPC (10.x), the function itself (127.x), in any spelling the resolver accepts (`0x7f000001`, `2130706433`,
`[::ffff:169.254.169.254]`, a name that resolves to loopback). Only globally routable addresses are allowed
(`ipaddress`'s `is_global`, i.e. IANA's special-purpose registries), and an IPv6 address that carries an IPv4 one
(IPv4-mapped, NAT64, 6to4, Teredo) must be global as both. The two older spellings that carry one, IPv4-compatible
(`::a.b.c.d`, deprecated by RFC 4291) and IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765), are refused whole:
`ipaddress` calls them global whatever IPv4 they hold, and no public endpoint is reached through them. Loopback is
allowed only when the caller says so (the local stack, GLOBESMS_ALLOW_LOOPBACK_CALLBACKS=true); private and
link-local ranges never are.

Written here because no maintained library vets addresses this way for an HTTP client (httpx has no hook for it);
the sender connects to the addresses vetted here (the first that takes the connection), never resolving the name a
second time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_OLD_IPV4_FORMS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))  # ::1 is loopback
_LOCAL_NAMES = ("localhost", "localhost.")


class AddressRefused(ValueError):
    """The host is (or resolves to) an address a callback may not reach. The message names the rule only."""


def literal_address(host: str) -> IpAddress | None:
    """The address `host` spells, in any form a resolver reads without DNS (`[::1]`, `127.1`, `0x7f000001`,
    `2130706433`), or None for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))  # the legacy forms inet_aton (and getaddrinfo) accept
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def check_address(address: IpAddress, *, allow_loopback: bool = False) -> None:
    """Raises AddressRefused unless `address` is global (or loopback, when allowed)."""
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    for candidate in (address, inner):
        if candidate is None:
            continue
        if candidate.is_loopback:
            if not allow_loopback:
                raise AddressRefused("the callback address is a loopback address")
            continue
        # is_global is True for multicast (224.0.0.0/4, ff00::/8) and IPv6 site-local (fec0::/10, deprecated):
        # neither is a place a callback may go.
        site_local = isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local
        if not candidate.is_global or candidate.is_multicast or site_local:
            raise AddressRefused("the callback address is not a public (global) address")
        if any(candidate in old for old in _OLD_IPV4_FORMS):
            raise AddressRefused("the callback address is not a public (global) address")


def check_literal_host(host: str, *, allow_loopback: bool = False) -> None:
    """At accept: refuse a host that is an address (or `localhost`) a callback may not reach; names are resolved
    and checked at each delivery."""
    if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
        if not allow_loopback:
            raise AddressRefused("the callback address is a loopback address")
        return
    address = literal_address(host)
    if address is not None:
        check_address(address, allow_loopback=allow_loopback)


def system_resolver(host: str, port: int) -> list[str]:
    infos: list[Any] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def vetted_addresses(
    host: str, port: int, *, allow_loopback: bool = False, resolve: Resolver = system_resolver
) -> list[str]:
    """The addresses to connect to for `host`, in the resolver's order (each once): the literal itself, or every
    address the name resolves to when all of them are allowed (one bad answer refuses the name: a resolver may
    rotate them). Raises AddressRefused, or OSError when the name does not resolve."""
    literal = literal_address(host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
        return [str(literal)]
    if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
        check_literal_host(host, allow_loopback=allow_loopback)
    answers = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    if not answers:
        raise OSError(f"no address for the callback host (port {port})")
    for answer in answers:
        check_address(answer, allow_loopback=allow_loopback)
    return list(dict.fromkeys(str(answer) for answer in answers))
