"""A :mod:`groupwire.domain.filters` tree as one SQLAlchemy condition, the same on each backend.

PostgreSQL gets ``LIKE``/``ILIKE``/``~``, as Medusa's own queries do. SQLite's ``LIKE``
ignores case and has no ``ILIKE``, so there a pattern becomes the equivalent regular
expression, matched by the ``REGEXP`` function SQLAlchemy registers on SQLite connections:
the same rows come back on both. Related rows count only while live (not soft-deleted), and
the listed rows themselves are always live (the caller adds ``deleted_at IS NULL``): a
``deleted_at`` filter can narrow a list but never bring deleted rows back, as in Medusa.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, exists, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.filters import All, AnyOf, Compare, Filter, Related, Search, like_regex
from groupwire.store import tables

C = tables.customer
G = tables.customer_group
M = tables.membership

SEARCHABLE: dict[str, tuple[str, ...]] = {
    # Medusa's customer module marks these ``searchable()``; a group's ``description`` is
    # Groupwire's own (Medusa's groups have none) and searched with its name
    C.name: ("company_name", "first_name", "last_name", "email", "phone"),
    G.name: ("name", "description"),
}


def condition(table: Table, where: Filter, dialect: str) -> ColumnElement[bool]:
    """``where`` over the rows of ``table`` (``customer`` or ``customer_group``)."""
    if isinstance(where, All):
        return and_(true(), *(condition(table, part, dialect) for part in where.parts))
    if isinstance(where, AnyOf):
        return or_(false(), *(condition(table, part, dialect) for part in where.parts))
    if isinstance(where, Search):
        return _search(table, where.text, dialect)
    if isinstance(where, Related):
        return _related(table, where, dialect)
    return _compare(table.c[where.field], where, dialect)


def _compare(column: Any, where: Compare, dialect: str) -> ColumnElement[bool]:
    value = where.value
    op = where.op
    if op == "in" or op == "nin":
        values = list(value) if isinstance(value, tuple) else [value]
        return column.in_(values) if op == "in" else column.not_in(values)
    if isinstance(value, tuple):  # $eq / $ne with a list
        return column.in_(list(value)) if op == "eq" else column.not_in(list(value))
    if op == "eq":
        return column.is_(None) if value is None else column == value
    if op == "ne":
        return column.is_not(None) if value is None else column != value
    if op in ("like", "ilike"):
        return like(column, str(value), dialect, ignore_case=op == "ilike")
    if op == "re":
        return column.regexp_match(str(value))
    if value is None:  # ``created_at[$gt]=null``: SQL compares nothing with NULL
        return false()
    compare = {"gt": column.__gt__, "gte": column.__ge__, "lt": column.__lt__}
    return compare.get(op, column.__le__)(value)


def like(column: Any, pattern: str, dialect: str, *, ignore_case: bool) -> ColumnElement[bool]:
    """SQL ``LIKE`` (``%``, ``_``, ``\\`` escapes), case-sensitive or not, on either backend."""
    if dialect == "postgresql":
        if ignore_case:
            return column.ilike(pattern, escape="\\")
        return column.like(pattern, escape="\\")
    flags = "(?is)" if ignore_case else "(?s)"  # SQLite's compiler drops ``flags=``
    return column.regexp_match(flags + like_regex(pattern))


def _search(table: Table, text: str, dialect: str) -> ColumnElement[bool]:
    words = text.split()
    columns = [table.c[name] for name in SEARCHABLE[table.name]]
    return and_(
        true(),
        *(
            or_(*(like(column, f"%{word}%", dialect, ignore_case=True) for column in columns))
            for word in words
        ),
    )


def _related(table: Table, where: Related, dialect: str) -> ColumnElement[bool]:
    if table is C and where.relation == "groups":
        other, own_key, other_key = G, M.c.customer_id, M.c.customer_group_id
    elif table is G and where.relation == "customers":
        other, own_key, other_key = C, M.c.customer_group_id, M.c.customer_id
    else:
        raise ValueError(f"{table.name} has no relation {where.relation!r}")
    return exists(
        select(M.c.customer_id)
        .join(other, other.c.id == other_key)
        .where(
            own_key == table.c.id,
            other.c.deleted_at.is_(None),
            condition(other, where.where, dialect),
        )
    )
