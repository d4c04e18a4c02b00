"""Typed rows from pgoutput's text values, using psycopg's own loaders for each type OID.

pgoutput sends every column as text, formatted by the server's output functions; psycopg's
text loaders read exactly that format (timestamptz, jsonb, boolean, numbers...). The capture
connection sets ``DateStyle=ISO`` and ``TimeZone=UTC`` so that timestamps come in the form
these loaders expect.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg.abc import Loader
from psycopg.pq import Format

from groupwire.medusa.pgoutput import UNCHANGED, Relation, Value

Row = dict[str, Any]
"""Column name -> value; a TOASTed column an UPDATE left alone holds ``UNCHANGED``."""


@lru_cache(maxsize=256)
def _loader(oid: int) -> Loader:
    loader_class = psycopg.adapters.get_loader(oid, Format.TEXT)
    if loader_class is None:  # an unknown type (an extension's): keep the text
        loader_class = psycopg.adapters.get_loader(25, Format.TEXT)
    assert loader_class is not None
    return loader_class(oid, None)


def typed(relation: Relation, values: tuple[Value, ...]) -> Row:
    """The row as a dict of Python values (``None`` for NULL, ``UNCHANGED`` kept as is)."""
    row: Row = {}
    for column, value in zip(relation.columns, values, strict=False):
        if value is None or value is UNCHANGED:
            row[column.name] = value
        elif isinstance(value, str):
            row[column.name] = _loader(column.type_oid).load(value.encode("utf-8"))
        else:  # binary format: only with the 'binary' option, which capture never sets
            row[column.name] = value
    return row


__all__ = ["Row", "typed"]
