"""The SSRF guard: what a webhook URL may point at (no network traffic: IP literals, names
the local resolver answers, and one name whose DNS answer is stubbed)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import warnings
from collections.abc import Callable
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire.api import create_app
from groupwire.auth import keys
from groupwire.webhooks.ssrf import UnsafeUrl, resolve_target, resolve_target_async
from tests.webhooks.conftest import open_gw

PUBLIC = "https://93.184.215.14/hook"  # an IP literal: nothing is resolved or contacted


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://127.8.9.10:8443/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://172.16.0.9/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://[fd12::1]/hook", "private"),
        ("https://169.254.1.1/hook", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://100.100.100.200/", "metadata"),
        ("https://100.64.0.1/hook", "non-public"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ],
)
def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        resolve_target(url, allow_private=False, allow_http=False)


def test_a_public_address_is_accepted_and_pinned() -> None:
    target = resolve_target(PUBLIC, allow_private=False, allow_http=False)
    assert target.host == "93.184.215.14" and target.port == 443
    assert target.addresses == (ipaddress.ip_address("93.184.215.14"),)


def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(UnsafeUrl, match="https"):
        resolve_target("http://93.184.215.14/hook", allow_private=False, allow_http=False)
    target = resolve_target("http://93.184.215.14/hook", allow_private=False, allow_http=True)
    assert target.port == 80


def test_allow_private_admits_loopback_but_never_metadata() -> None:
    target = resolve_target("http://localhost:8080/x", allow_private=True, allow_http=True)
    assert all(address.is_loopback for address in target.addresses)
    with pytest.raises(UnsafeUrl, match="metadata"):
        resolve_target("http://169.254.169.254/", allow_private=True, allow_http=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/x",
        "https://user:pass@93.184.215.14/x",
        "https:///nohost",
        "not a url",
        "",
        "https://93.184.215.14:99999/x",
        "https://93.184.215.14/" + "a" * 3000,
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        resolve_target(url, allow_private=False, allow_http=False)


# IPv6 addresses that lead to an IPv4 address: each is checked as that IPv4 address.
EMBEDDING_LOOPBACK = {
    "6to4": "2002:7f00:1::1",
    "teredo": "2001:0:4136:e378:8000:63bf:80ff:fffe",  # client 127.0.0.1, XOR-obfuscated
    "ipv4-mapped": "::ffff:127.0.0.1",
    "ipv4-compatible": "::127.0.0.1",
    "nat64": "64:ff9b::7f00:1",
}
EMBEDDING_METADATA = {
    "6to4": "2002:a9fe:a9fe::1",
    "teredo": "2001:0:4136:e378:8000:63bf:5601:5601",
    "ipv4-mapped": "::ffff:169.254.169.254",
    "ipv4-compatible": "::169.254.169.254",
    "nat64": "64:ff9b::a9fe:a9fe",
}


@pytest.mark.parametrize("address", EMBEDDING_LOOPBACK.values(), ids=EMBEDDING_LOOPBACK.keys())
def test_an_ipv6_literal_embedding_loopback_is_refused_naming_the_ipv4(address: str) -> None:
    with pytest.raises(UnsafeUrl, match=r"embedding 127\.0\.0\.1, a loopback address"):
        resolve_target(f"https://[{address}]/hook", allow_private=False, allow_http=False)


@pytest.mark.parametrize("address", EMBEDDING_METADATA.values(), ids=EMBEDDING_METADATA.keys())
def test_an_ipv6_literal_embedding_a_metadata_address_is_refused_even_when_private_is_allowed(
    address: str,
) -> None:
    with pytest.raises(UnsafeUrl, match=r"embedding 169\.254\.169\.254, a cloud metadata"):
        resolve_target(f"https://[{address}]/hook", allow_private=True, allow_http=False)


def test_the_local_use_nat64_prefix_is_refused_whatever_it_embeds() -> None:
    with pytest.raises(UnsafeUrl, match="local-use NAT64"):
        resolve_target("https://[64:ff9b:1::5db8:d70e]/", allow_private=False, allow_http=False)


def test_a_6to4_address_embedding_a_public_ipv4_is_accepted() -> None:
    target = resolve_target("https://[2002:5db8:d70e::1]/", allow_private=False, allow_http=False)
    assert target.addresses == (ipaddress.ip_address("2002:5db8:d70e::1"),)


@pytest.fixture
def sneaky_name(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """``sneaky_name(address)``: a host name whose DNS answer is ``address`` (the resolver's
    answer is stubbed; every other name resolves as usual)."""
    real = socket.getaddrinfo
    answers: dict[str, str] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (answers[host], port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def make(address: str) -> str:
        answers["hooks.sneaky.example"] = address
        return "hooks.sneaky.example"

    return make


@pytest.mark.parametrize("address", EMBEDDING_LOOPBACK.values(), ids=EMBEDDING_LOOPBACK.keys())
def test_at_delivery_a_name_resolving_to_an_address_embedding_loopback_is_refused(
    sneaky_name: Callable[[str], str], address: str
) -> None:
    url = f"https://{sneaky_name(address)}/hook"
    with pytest.raises(UnsafeUrl, match=r"embedding 127\.0\.0\.1, a loopback address"):
        asyncio.run(resolve_target_async(url, allow_private=False, allow_http=False))


@pytest.mark.parametrize("address", EMBEDDING_METADATA.values(), ids=EMBEDDING_METADATA.keys())
def test_at_delivery_a_name_resolving_to_an_address_embedding_metadata_is_refused(
    sneaky_name: Callable[[str], str], address: str
) -> None:
    url = f"https://{sneaky_name(address)}/hook"
    with pytest.raises(UnsafeUrl, match=r"embedding 169\.254\.169\.254, a cloud metadata"):
        asyncio.run(resolve_target_async(url, allow_private=True, allow_http=False))


@pytest.mark.parametrize("address", EMBEDDING_LOOPBACK.values(), ids=EMBEDDING_LOOPBACK.keys())
def test_creating_an_endpoint_on_an_address_embedding_loopback_is_a_400(
    database_url: str, address: str
) -> None:
    strict = open_gw(database_url, webhooks_allow_private=False)
    try:
        secret = keys.create_key(strict.engine, "admin", ["admin"])[1]
        with TestClient(create_app(strict), headers={"Authorization": f"Bearer {secret}"}) as c:
            response = c.post("/admin/webhooks", json={"url": f"https://[{address}]/hook"})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "invalid_data"
        assert "127.0.0.1" in response.json()["message"]
        assert strict.webhooks.list().count == 0
    finally:
        strict.close()
