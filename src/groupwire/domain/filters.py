"""Filters over customers and customer groups, as Medusa's list routes take them.

A filter is a small tree: comparisons of one field, a free-text search, a condition on a
related row, and ``All``/``AnyOf`` (Medusa's ``$and``/``$or``). The API builds it from a query
string (:mod:`groupwire.api.list_filters`), the store turns it into SQL
(:mod:`groupwire.store.filters`); library callers may build one by hand::

    gw.customers.list(where=All((Compare("first_name", "eq", "Ada"), Search("lovelace"))))

Values are already typed: ``str`` for text fields, ``datetime`` (UTC) for times, ``bool``
for ``has_account``; ``None`` is SQL's NULL (``eq None`` is ``IS NULL``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Operator = Literal["eq", "ne", "in", "nin", "like", "ilike", "re", "gt", "gte", "lt", "lte"]
Value = str | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Compare:
    """``field <op> value``; ``in``/``nin`` take a tuple of values."""

    field: str
    op: Operator
    value: Value | tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Search:
    """Medusa's ``q``: every whitespace-separated word is in one of the searchable fields
    (case-insensitively; ``%`` and ``_`` are wildcards and ``\\`` escapes, as in SQL LIKE)."""

    text: str


@dataclass(frozen=True, slots=True)
class Related:
    """Some related row (a customer's ``groups``, a group's ``customers``) matches ``where``."""

    relation: str
    where: Filter


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Filter, ...]


Filter = Compare | Search | Related | All | AnyOf


def like_regex(pattern: str) -> str:
    """The Python regular expression matching what SQL's ``LIKE pattern`` matches (``%``,
    ``_``, ``\\`` escapes; a trailing lone ``\\`` is itself): what SQLite evaluates a LIKE
    filter with, and what a smart group's rule decides one customer with."""
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    return "^" + "".join(parts) + "\\Z"
