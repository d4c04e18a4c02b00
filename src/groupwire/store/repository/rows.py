"""Rows into entities, and what every part of the repository shares: the table aliases, id lists
cut into chunks a statement can bind, ``LIKE`` patterns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.engine import RowMapping

from groupwire.domain.models import Customer, CustomerGroup
from groupwire.store import tables

T = TypeVar("T")

# SQLite allows 32766 bound parameters in one statement; stay well below.
CHUNK = 5000

G = tables.customer_group
C = tables.customer
M = tables.membership


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _build(entity: Callable[..., T], row: RowMapping) -> T:
    """An entity from a row whose columns are named like its fields (fields the row lacks keep
    their defaults, columns the entity lacks are ignored)."""
    return entity(**{name: row[name] for name in _field_names(entity) if name in row})


@lru_cache(maxsize=8)
def _field_names(entity: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(entity))


def _build_all(entity: Callable[..., T], result: Any) -> list[T]:
    """Entities from every row of ``result`` (as :func:`_build`, the column positions looked
    up once for the whole result instead of by name in every row)."""
    keys = list(result.keys())
    names = [name for name in _field_names(entity) if name in keys]
    if not names:
        return [entity() for _ in result]
    if names == keys:  # the columns are the fields, in order (``select(table)``)
        return [entity(*row) for row in result]
    positions = [keys.index(name) for name in names]
    return [entity(**dict(zip(names, [row[i] for i in positions], strict=True))) for row in result]


def to_group(row: RowMapping) -> CustomerGroup:
    return _build(CustomerGroup, row)


def to_customer(row: RowMapping) -> Customer:
    return _build(Customer, row)
