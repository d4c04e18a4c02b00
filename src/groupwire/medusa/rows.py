"""Typed rows from pgoutput's text values, using psycopg's own loaders for each type OID.

pgoutput sends every column as text, formatted by the server's output functions; psycopg's
text loaders read exactly that format (timestamptz, jsonb, boolean, numbers...). The capture
connection sets ``DateStyle=ISO`` and ``TimeZone=UTC`` so that timestamps come in the form
these loaders expect.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.abc import Loader
from psycopg.pq import Format

from groupwire.medusa.pgoutput import Relation, Value


@lru_cache(maxsize=256)
def _loader(oid: int) -> Loader:
    loader_class = psycopg.adapters.get_loader(oid, Format.TEXT)
    if loader_class is None:  # an unknown type (an extension's): keep the text
        loader_class = psycopg.adapters.get_loader(25, Format.TEXT)
    assert loader_class is not None
    return loader_class(oid, None)


TEXT_TYPES = frozenset({19, 25, 1042, 1043})  # name, text, char(n), varchar: the str as is


@lru_cache(maxsize=64)
def _columns(relation: Relation) -> tuple[tuple[str, Loader | None], ...]:
    """Each column's name and loader (None for the text types); computed once a relation."""
    return tuple(
        (c.name, None if c.type_oid in TEXT_TYPES else _loader(c.type_oid))
        for c in relation.columns
    )


class Row(Mapping[str, Any]):
    """Column name -> value; a TOASTed column an UPDATE left alone holds ``UNCHANGED``.

    Each value is typed when first read: a batch of 10,000 membership rows is read for its
    ids and ``created_by`` (text, kept as sent) and never pays for parsing its timestamps.
    """

    __slots__ = ("_columns", "_index", "_raw", "_typed")

    def __init__(self, relation: Relation, values: tuple[Value, ...]) -> None:
        self._columns, self._index = _layout(relation)
        self._raw = values
        self._typed: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._typed[name]
        except KeyError:
            pass
        position = self._index[name]  # KeyError for a column the row does not have
        if position >= len(self._raw):
            raise KeyError(name)
        value = self._raw[position]
        loader = self._columns[position][1]
        if loader is not None and isinstance(value, str):
            value = loader.load(value.encode("utf-8"))
        # else NULL, UNCHANGED, a text type, or binary (only with the 'binary' option,
        # which capture never sets)
        self._typed[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._columns[: len(self._raw)])

    def __len__(self) -> int:
        return min(len(self._columns), len(self._raw))

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


@lru_cache(maxsize=64)
def _index(relation: Relation) -> dict[str, int]:
    return {c.name: i for i, c in enumerate(relation.columns)}


_LAYOUTS: dict[int, tuple[Relation, tuple[tuple[str, Loader | None], ...], dict[str, int]]] = {}


def _layout(relation: Relation) -> tuple[tuple[tuple[str, Loader | None], ...], dict[str, int]]:
    """The relation's columns and index, found by the relation object's identity: a
    ``Relation`` hashes all its columns, and this is asked once per row."""
    found = _LAYOUTS.get(id(relation))
    if found is None or found[0] is not relation:
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        found = _LAYOUTS[id(relation)] = (relation, _columns(relation), _index(relation))
    return found[1], found[2]


def typed(relation: Relation, values: tuple[Value, ...]) -> Row:
    """The row as a mapping of Python values (``None`` for NULL, ``UNCHANGED`` kept)."""
    return Row(relation, values)


__all__ = ["Row", "typed"]
