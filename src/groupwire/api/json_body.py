"""The Admin API's JSON answers, encoded with orjson.

Entity and list answers are the largest the API sends (a group with its thousands of members):
orjson encodes them several times faster than the standard library, into the same compact
bytes Starlette's ``JSONResponse`` writes (UTF-8, no spaces). What orjson cannot encode as the
standard library would (integers beyond 64 bits, which a metadata value may hold) falls back
to the standard encoder, so no answer changes.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

__all__ = ["JSONBody", "encode"]


def encode(content: Any) -> bytes:
    """``content`` as JSON bytes, exactly as ``JSONResponse`` would render them."""
    try:
        return orjson.dumps(content)
    except (orjson.JSONEncodeError, TypeError):
        return bytes(JSONResponse(content).body)


class JSONBody(JSONResponse):
    """A ``JSONResponse`` rendered by :func:`encode`."""

    def render(self, content: Any) -> bytes:
        return encode(content)
