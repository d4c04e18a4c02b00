"""Request bodies: streamed on to Medusa as they come, or read whole for the hooks up to the
body limit (over it, the rest is read and dropped before the 413, as the Admin API's
BodyLimit does), and parsed as Medusa's Express parses them (JSON or urlencoded, gzip or
deflate).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message as MimeMessage
from typing import Any

import anyio
import qs_codec
from starlette.types import Message, Receive, Scope

from groupwire.medusa.gateway.headers import _header

# A refused body's rest is read and dropped before the 413 (as the Admin API's BodyLimit does).
LINGER_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 10.0
# body-parser's urlencoded parser (extended: qs) as Medusa's Express configures it
_QS = qs_codec.DecodeOptions(depth=32, parameter_limit=1000, list_limit=1000)


class TooLarge(Exception):
    """A write body over ``GatewayOptions.max_body``; ``drained`` says whether the rest of it
    was read (and dropped) to its end, so the 413 can be sent on an open connection."""

    def __init__(self, drained: bool) -> None:
        super().__init__("body too large")
        self.drained = drained


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


@dataclass(slots=True)
class ParsedBody:
    raw: bytes
    value: dict[str, Any]


def _request_body(scope: Scope, receive: Receive) -> AsyncIterator[bytes] | None:
    """The request body as a stream, or None when the request has none."""
    headers = scope["headers"]
    has_body = any(
        (name == b"content-length" and value.strip() not in (b"", b"0"))
        or name == b"transfer-encoding"
        for name, value in headers
    )
    return _stream(receive) if has_body else None


async def _stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone  # abandon the upstream request
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _replay(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _replay_or_none(data: bytes) -> AsyncIterator[bytes] | None:
    return _replay(data) if data else None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            more = message.get("more_body", False)
            raise TooLarge(drained=not more or await _drain(receive))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of a refused body (up to ``LINGER_BYTES`` and
    ``LINGER_SECONDS``) before the 413: a client writing its whole request before it reads
    could otherwise see a connection reset instead of the answer. True once the body ended."""
    dropped = 0
    with anyio.move_on_after(LINGER_SECONDS):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return True
            dropped += len(message.get("body", b""))
            if dropped > LINGER_BYTES:
                return False
    return False


def _parse(raw: bytes, headers: dict[bytes, bytes]) -> ParsedBody | None:
    """The body as Medusa's Express reads it (JSON or urlencoded, gzip or deflate allowed);
    None when it does not read as an object."""
    content_type = _header(headers, b"content-type")
    if not content_type:
        return ParsedBody(raw, {}) if not raw else None
    mime = MimeMessage()
    mime["content-type"] = content_type
    kind = mime.get_content_type()
    charset = mime.get_param("charset") or "utf-8"
    encoding = (_header(headers, b"content-encoding") or "identity").strip().lower()
    try:
        data = raw
        if encoding == "gzip":
            data = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            data = zlib.decompress(raw)
        elif encoding != "identity":
            return None
        text = data.decode(str(charset))
        if kind == "application/json":
            value = json.loads(text) if text.strip() else {}
        elif kind == "application/x-www-form-urlencoded":
            value = qs_codec.decode(text, _QS)
        else:
            return ParsedBody(raw, {}) if not raw else None
    except (ValueError, LookupError, zlib.error):
        return None
    return ParsedBody(raw, value) if isinstance(value, dict) else None
