"""The SSRF guard: what a webhook URL may point at (no network traffic: IP literals and
names the local resolver answers)."""

from __future__ import annotations

import ipaddress

import pytest

from groupwire.webhooks.ssrf import UnsafeUrl, resolve_target

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
