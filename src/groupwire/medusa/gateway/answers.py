"""The gateway's own answers (a veto, a body over the limit, Medusa unreachable or behind), in
Medusa's error shape ``{"type", "message"}``, so a client cannot tell them from Medusa's.
"""

from __future__ import annotations

import json
import logging

import httpx
from starlette.types import Send

log = logging.getLogger("groupwire.medusa.gateway")


async def _unreachable(send: Send, upstream: httpx.URL, error: Exception) -> None:
    log.warning("Medusa at %s unreachable: %r", upstream, error)
    await _answer(
        send, 502, "unexpected_state", f"Medusa could not be reached ({type(error).__name__})"
    )


async def _answer(
    send: Send,
    status: int,
    type: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An answer of the gateway's own, in Medusa's error shape."""
    body = json.dumps({"type": type, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
