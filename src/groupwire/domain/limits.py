"""How large a value may be, and how much of a bad value an error message may show.

Medusa's columns are unbounded ``text`` and ``jsonb``; these limits are Groupwire's own,
chosen so that no single field can carry megabytes into a row, an event and every delivery
of it. The service enforces them (the library can be called directly); the Admin API's
request bodies state the same numbers in the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

NAME_MAX = 255
"""Characters in a group name, and in a customer's first name, last name and company name."""
DESCRIPTION_MAX = 10_000
"""Characters in a group description."""
EMAIL_MAX = 320
"""Characters in an email address (RFC 5321's 64 + 1 + 255)."""
PHONE_MAX = 64
"""Characters in a phone number."""
ID_MAX = 255
"""Characters in an id named in a request (ids Groupwire issues have about 30)."""
METADATA_MAX_BYTES = 65_536
"""Bytes of a metadata object serialised as compact UTF-8 JSON (after a merge, too)."""
METADATA_KEY_MAX = 255
"""Characters in a metadata key."""
METADATA_MAX_DEPTH = 32
"""Nesting of objects and arrays inside metadata."""

LISTED_IDS = 5
"""How many ids an error message names before it counts the rest."""
EXCERPT_CHARS = 64
"""How much of a refused value an error message shows."""


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON, the measure of ``METADATA_MAX_BYTES``."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def shorten(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters so a huge input is never echoed back."""
    return shorten(repr(value), limit)


def listing(items: Sequence[str], shown: int = LISTED_IDS) -> str:
    """``a, b, c`` for a short list; ``a, b, c, d, e and 99,995 more`` for a long one."""
    if len(items) <= shown:
        return ", ".join(items)
    return f"{', '.join(items[:shown])} and {len(items) - shown:,} more"
