"""Pages of a list of rows: time filters, sort order (a column, or a field of a customer's
groups), limit and offset, and the count of every row that matches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from groupwire.store.repository.rows import C, G, M, _build_all


def _time_filters(column: Any, ops: dict[str, datetime] | None) -> list[Any]:
    if not ops:
        return []
    compare = {
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
        "eq": column.__eq__,
    }
    return [compare[op](value) for op, value in ops.items()]


def _page(
    conn: Connection,
    query: Select[Any],
    table: Any,
    order: str | None,
    limit: int,
    offset: int,
    entity: Any,
) -> tuple[list[Any], int]:
    """One page of ``query`` as ``entity`` (a dataclass whose fields name the columns) and
    the count of all its rows."""
    count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    column_name = (order or "created_at").lstrip("-")
    descending = (order or "").startswith("-")
    if "." in column_name:  # a relation's field: only customers' groups have one
        key = _group_sort_key(column_name.partition(".")[2])
        direction = key.desc().nulls_first() if descending else key.asc().nulls_last()
    else:
        column = table.c[column_name]
        direction = column.desc() if descending else column.asc()
    query = query.order_by(direction, table.c.id.asc()).limit(limit).offset(offset)
    return _build_all(entity, conn.execute(query)), count


def _group_sort_key(field: str) -> Any:
    """A customer's key for ``order=groups.<field>``: the smallest value among its live groups,
    in either direction, as Medusa's ORM sorts by a to-many relation (``min(field)``); a
    customer in no group sorts as PostgreSQL sorts a null (last ascending, first descending)."""
    return (
        select(func.min(G.c[field]))
        .select_from(M.join(G, G.c.id == M.c.customer_group_id))
        .where(M.c.customer_id == C.c.id, G.c.deleted_at.is_(None))
        .scalar_subquery()
    )
