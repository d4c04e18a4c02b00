"""Identifiers: a prefix and a ULID, so ids sort by creation time and say what they name."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ulid import ULID

CUSTOMER = "cus"
CUSTOMER_ADDRESS = "cuaddr"
CUSTOMER_GROUP = "cusgroup"
EVENT = "evt"


def new_id(prefix: str) -> str:
    """Return a new id such as ``cusgroup_01JD3...``."""
    return f"{prefix}_{ULID()}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` new ids at once, increasing, each a valid 26-character ULID string.

    One ULID supplies the millisecond timestamp and 30 random bits (its first 16 characters);
    the last 10 characters count up in hexadecimal (every hex digit is a Crockford base32
    digit) from a random 39-bit start. Generating them costs a string format each, which
    matters when one bulk change records 100,000 events.
    """
    head = str(ULID())[:16]
    start = secrets.randbits(39)
    return [f"{prefix}_{head}{start + offset:010X}" for offset in range(count)]


def run_ids(first: str) -> Callable[[int], str]:
    """:func:`shifted_id` of ``first`` as a function of the offset, for the many ids of one
    run (``first`` is taken apart once)."""
    head, base = first[:-10], int(first[-10:], 16)
    return lambda offset: f"{head}{base + offset:010X}"


def shifted_id(first: str, offset: int) -> str:
    """The id ``offset`` places after ``first`` in a run of ids made by :func:`new_ids`
    (its last 10 characters are a hexadecimal counter): ``new_ids(p, n)[k] ==
    shifted_id(new_ids(p, n)[0], k)``."""
    return run_ids(first)(offset)
