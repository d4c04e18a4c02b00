"""Customer groups: read, lock, check a name's uniqueness, insert, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.filters import Filter, Search
from groupwire.domain.models import CustomerGroup
from groupwire.store import filters
from groupwire.store.repository.listing import _page, _time_filters
from groupwire.store.repository.rows import G, M, to_group
from groupwire.store.repository.statements import (
    _GROUP_NAME_TAKEN,
    _INSERT,
    _sql,
    _taken,
    id_chunks,
)


def get_group(conn: Connection, group_id: str, *, lock: bool = False) -> CustomerGroup | None:
    sql = _sql(conn)
    query = sql.group_locked if lock else sql.group
    row = conn.execute(query, {"id": group_id}).mappings().first()
    return to_group(row) if row else None


def key_share_group(conn: Connection, group_id: str) -> None:
    """Key-share-lock a group's row (PostgreSQL) before writing its memberships: waits for a
    change that holds it for update (a smart group's rule being changed) to commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(_sql(conn).group_key_shared, {"id": group_id}).first()


def lock_groups(conn: Connection, group_ids: Sequence[str]) -> dict[str, CustomerGroup]:
    """Lock live groups in id order; returns those that exist."""
    found: dict[str, CustomerGroup] = {}
    for params in id_chunks(conn, sorted(set(group_ids))):
        for row in conn.execute(_sql(conn).groups_locked, params).mappings().all():
            found[row["id"]] = to_group(row)
    return found


def group_name_taken(conn: Connection, name: str, *, except_id: str | None = None) -> bool:
    return _taken(conn, _GROUP_NAME_TAKEN, {"name": name}, except_id)


def insert_group(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT[G.name], values)


def list_groups(
    conn: Connection,
    *,
    q: str | None = None,
    ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    customer_ids: Sequence[str] | None = None,
    where: Filter | None = None,
    created: dict[str, datetime] | None = None,
    updated: dict[str, datetime] | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CustomerGroup], int]:
    conditions: list[ColumnElement[bool]] = [G.c.deleted_at.is_(None)]
    dialect = conn.dialect.name
    if q:
        conditions.append(filters.condition(G, Search(q), dialect))
    if where is not None:
        conditions.append(filters.condition(G, where, dialect))
    if ids:
        conditions.append(G.c.id.in_(list(ids)))
    if names:
        conditions.append(G.c.name.in_(list(names)))
    if customer_ids:
        conditions.append(
            G.c.id.in_(select(M.c.customer_group_id).where(M.c.customer_id.in_(customer_ids)))
        )
    conditions += _time_filters(G.c.created_at, created) + _time_filters(G.c.updated_at, updated)
    return _page(conn, select(G).where(*conditions), G, order, limit, offset, CustomerGroup)
