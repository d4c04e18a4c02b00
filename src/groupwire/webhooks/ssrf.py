"""Refusing webhook URLs that would make Groupwire call into its own network (SSRF).

A URL is checked when an endpoint is created or changed and again before every delivery,
because what a host name resolves to may change. Refused: addresses that are loopback,
private, link-local, shared (CGNAT), reserved, multicast or unspecified, and cloud metadata
services — unless ``allow_private`` is set (development, tests). Metadata addresses stay
refused even then: nothing legitimate listens there for webhooks. Plain ``http`` is refused
unless ``allow_http`` is set.

An IPv6 address that carries an IPv4 address inside it reaches that IPv4 address through a
translator or tunnel, so the IPv4 address is checked too (and named in the refusal): IPv4-mapped
``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, 6to4 ``2002::/16``, Teredo ``2001::/32``
(server and client) and NAT64 ``64:ff9b::/96``. The local-use NAT64 prefix ``64:ff9b:1::/48``
places the IPv4 address where its operator chose, so it is refused as a whole (it is private).

:func:`resolve_target` returns the addresses it checked; the dispatcher connects to one of
them directly (sending the original host name as ``Host`` and TLS server name), so a second
DNS lookup cannot swap in an address that was never checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from groupwire.domain.errors import InvalidData

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
MAX_URL_LENGTH = 2048


class UnsafeUrl(InvalidData):
    """A webhook URL that Groupwire refuses to call."""


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts and the addresses its host resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def check_syntax(url: str, *, allow_http: bool) -> tuple[str, str, int]:
    """Scheme, host and port of an absolute http(s) URL; raises :class:`UnsafeUrl`."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("url must be an absolute http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"url is not a valid URL: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("url must use https (or http where allowed)")
    if scheme == "http" and not allow_http:
        raise UnsafeUrl("url must use https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("url has no host")
    if any(c.isspace() for c in url):
        raise UnsafeUrl("url must not contain whitespace")
    return scheme, host, port or (443 if scheme == "https" else 80)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (see the module's docstring)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    if address in NAT64_WELL_KNOWN or (
        address in IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    ):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why an address is refused, or None when it may be called."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL_USE and not allow_private:
            return "a local-use NAT64 address"
        for inner in embedded_ipv4(address):
            reason = refusal(inner, allow_private=allow_private)
            if reason:
                return f"an address embedding {inner}, {reason}"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for label, flag in (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
    ):
        if flag:
            return label
    if not address.is_global:
        return "a non-public address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _checked(
    url: str,
    scheme: str,
    host: str,
    port: int,
    infos: list[tuple[object, ...]],
    allow_private: bool,
) -> Target:
    addresses: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"url host {host} does not resolve")
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise UnsafeUrl(f"url host {host} resolves to {address}, {reason}: refused")
    return Target(url, scheme, host, port, tuple(addresses))


def _precheck(url: str, *, allow_private: bool, allow_http: bool) -> tuple[str, str, int]:
    scheme, host, port = check_syntax(url, allow_http=allow_http)
    if host in METADATA_HOSTS:
        raise UnsafeUrl(f"url host {host} is a cloud metadata service: refused")
    return scheme, host, port


def resolve_target(url: str, *, allow_private: bool, allow_http: bool) -> Target:
    """Check a URL and every address its host resolves to; raises :class:`UnsafeUrl`."""
    scheme, host, port = _precheck(url, allow_private=allow_private, allow_http=allow_http)
    literal = _literal(host)
    if literal is not None:
        infos: list[tuple[object, ...]] = [(0, 0, 0, "", (str(literal), port))]
    else:
        try:
            infos = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (socket.gaierror, UnicodeError) as error:
            raise UnsafeUrl(f"url host {host} does not resolve: {error}") from error
    return _checked(url, scheme, host, port, infos, allow_private)


async def resolve_target_async(url: str, *, allow_private: bool, allow_http: bool) -> Target:
    """:func:`resolve_target` without blocking the event loop on DNS."""
    scheme, host, port = _precheck(url, allow_private=allow_private, allow_http=allow_http)
    literal = _literal(host)
    if literal is not None:
        infos: list[tuple[object, ...]] = [(0, 0, 0, "", (str(literal), port))]
    else:
        try:
            loop = asyncio.get_running_loop()
            infos = list(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (socket.gaierror, UnicodeError) as error:
            raise UnsafeUrl(f"url host {host} does not resolve: {error}") from error
    return _checked(url, scheme, host, port, infos, allow_private)
