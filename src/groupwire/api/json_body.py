"""The Admin API's JSON answers, encoded with orjson.

Entity and list answers are the largest the API sends (a group with its thousands of members):
orjson encodes them several times faster than the standard library, into the same compact
bytes Starlette's ``JSONResponse`` writes (UTF-8, no spaces). What orjson cannot encode as the
standard library would (integers beyond 64 bits, which a metadata value may hold) falls back
to the standard encoder, so no answer changes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.responses import JSONResponse

__all__ = ["JSONBody", "encode", "timestamp"]


# Timestamps: UTC as ``Z``, a naive one (as SQLite's rows hold them) taken as UTC; with or
# without microseconds exactly as ``datetime.isoformat`` writes them.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def encode(content: Any) -> bytes:
    """``content`` as JSON bytes, exactly as ``JSONResponse`` would render them, with each
    ``datetime`` as :func:`timestamp` text."""
    try:
        return orjson.dumps(content, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_text
        )
        return text.encode("utf-8")


def timestamp(moment: datetime) -> str:
    """A timestamp's JSON text as orjson writes it here: ISO 8601, ``Z`` for UTC (a naive
    timestamp is UTC), any other offset kept."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return timestamp(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JSONBody(JSONResponse):
    """A ``JSONResponse`` rendered by :func:`encode`."""

    def render(self, content: Any) -> bytes:
        return encode(content)
