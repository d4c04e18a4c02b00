"""Identifiers: a prefix and a ULID, so ids sort by creation time and say what they name."""

from __future__ import annotations

from ulid import ULID

CUSTOMER = "cus"
CUSTOMER_GROUP = "cusgroup"
EVENT = "evt"


def new_id(prefix: str) -> str:
    """Return a new id such as ``cusgroup_01JD3...``."""
    return f"{prefix}_{ULID()}"
