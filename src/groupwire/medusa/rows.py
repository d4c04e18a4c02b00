"""Typed rows from pgoutput's text values, using psycopg's own loaders for each type OID.

pgoutput sends every column as text, formatted by the server's output functions; psycopg's
text loaders read exactly that format (timestamptz, jsonb, boolean, numbers...). The capture
connection sets ``DateStyle=ISO`` and ``TimeZone=UTC`` so that timestamps come in the form
these loaders expect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from operator import itemgetter
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


class RowLayout:
    """What every row of one relation shares: its column names, each column's position and
    loader (None for the text types). Made once per Relation message, not once per row."""

    __slots__ = ("_pickers", "columns", "index", "relation")

    def __init__(self, relation: Relation) -> None:
        self.relation = relation
        self.columns = _columns(relation)
        self.index = {name: position for position, (name, _) in enumerate(self.columns)}
        self._pickers: dict[tuple[str, ...], Callable[[tuple[Value, ...]], Any] | None] = {}

    def picker(self, names: tuple[str, ...]) -> Callable[[tuple[Value, ...]], Any] | None:
        """A function taking the raw values of ``names`` (two or more) out of a whole row's
        values in one call, as a tuple; None when the relation lacks one of them."""
        try:
            return self._pickers[names]
        except KeyError:
            pass
        found = None
        if all(name in self.index for name in names):
            found = itemgetter(*(self.index[name] for name in names))
        self._pickers[names] = found
        return found


class Row(Mapping[str, Any]):
    """Column name -> value; a TOASTed column an UPDATE left alone holds ``UNCHANGED``.

    Each value is typed when first read: a batch of 10,000 membership rows is read for its
    ids and ``created_by`` (text, kept as sent) and never pays for parsing its timestamps.
    """

    __slots__ = ("_layout", "_raw", "_typed")

    def __init__(self, layout: RowLayout, values: tuple[Value, ...]) -> None:
        self._layout = layout
        self._raw = values
        self._typed: dict[str, Any] | None = None

    @property
    def layout(self) -> RowLayout:
        return self._layout

    @property
    def raw_values(self) -> tuple[Value, ...]:
        """The values as the server sent them, in the relation's column order (an UPDATE's
        or DELETE's old key may carry fewer)."""
        return self._raw

    def raw(self, name: str) -> Value:
        """The value as the server sent it (text, ``None`` for NULL, ``UNCHANGED``), untyped;
        ``None`` for a column the row does not carry. For a text column it is the typed
        value; for any column it tells NULL from set."""
        position = self._layout.index.get(name)
        raw = self._raw
        return raw[position] if position is not None and position < len(raw) else None

    def __getitem__(self, name: str) -> Any:
        position = self._layout.index[name]  # KeyError for a column the row does not have
        if position >= len(self._raw):
            raise KeyError(name)
        return self._value(name, position)

    def get(self, name: str, default: Any = None) -> Any:
        """As ``Mapping.get``, without its ``KeyError`` round (a customer row is read column
        by column, 10,000 rows a batch)."""
        position = self._layout.index.get(name)
        if position is None or position >= len(self._raw):
            return default
        return self._value(name, position)

    def __contains__(self, name: object) -> bool:
        position = self._layout.index.get(name) if isinstance(name, str) else None
        return position is not None and position < len(self._raw)

    def _value(self, name: str, position: int) -> Any:
        typed = self._typed
        if typed is not None and name in typed:
            return typed[name]
        value = self._raw[position]
        loader = self._layout.columns[position][1]
        if loader is None or not isinstance(value, str):
            # NULL, UNCHANGED, a text type, or binary (only with the 'binary' option, which
            # capture never sets): nothing to type, nothing to remember
            return value
        value = loader.load(value.encode("utf-8"))
        if typed is None:
            typed = self._typed = {}
        typed[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._layout.columns[: len(self._raw)])

    def __len__(self) -> int:
        return min(len(self._layout.columns), len(self._raw))

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


@lru_cache(maxsize=64)
def layout(relation: Relation) -> RowLayout:
    """The relation's :class:`RowLayout` (``Relation`` hashes all its columns: ask once per
    relation and keep it, as the decoder does, rather than once per row)."""
    return RowLayout(relation)


def typed(relation: Relation, values: tuple[Value, ...]) -> Row:
    """The row as a mapping of Python values (``None`` for NULL, ``UNCHANGED`` kept)."""
    return Row(layout(relation), values)


__all__ = ["Row", "RowLayout", "layout", "typed"]
