"""The headers of a forwarded request and of Medusa's answer: hop-by-hop ones dropped, the
``X-Forwarded-*`` ones set; and reading one header of a request.
"""

from __future__ import annotations

from starlette.types import Scope

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope["headers"]}


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value else None


def _upstream_headers(
    scope: Scope, replace: dict[bytes, bytes], drop: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """The request's headers for Medusa: hop-by-hop ones and ``Host`` dropped (httpx sets
    Medusa's), ``X-Forwarded-For/-Proto/-Host`` set, ``replace`` applied."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    connection = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    skip = HOP_BY_HOP | connection | drop | replace.keys() | {b"host", b"x-forwarded-for"}
    out = [(name, value) for name, value in headers if name not in skip]
    present = {name for name, _ in out}
    forwarded_for = [value for name, value in headers if name == b"x-forwarded-for"]
    client = scope.get("client")
    if client:
        forwarded_for.append(str(client[0]).encode())
    if forwarded_for:
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    # A proxy in front of this one (TLS ends there) has said these already: keep its word.
    host = dict(headers).get(b"host")
    if host and b"x-forwarded-host" not in present:
        out.append((b"x-forwarded-host", host))
    if b"x-forwarded-proto" not in present:
        out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    out.extend(replace.items())
    return out


def _downstream_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    connection = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    skip = HOP_BY_HOP | connection
    return [(name.lower(), value) for name, value in raw if name.lower() not in skip]
