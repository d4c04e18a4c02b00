"""A group's members and a customer's groups, for ``fields=*customers`` and ``fields=*groups``:
as entities, or as JSON rows built straight from what the driver returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, select
from sqlalchemy.engine import Connection

from groupwire.domain.models import Customer, CustomerGroup
from groupwire.store import tables
from groupwire.store.repository.rows import C, G, M, chunks, to_customer, to_group


def members_of_groups(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[Customer]]:
    """Live customers of each group, for ``fields=*customers``."""
    result: dict[str, list[Customer]] = {gid: [] for gid in group_ids}
    if not group_ids:
        return result
    query = (
        select(M.c.customer_group_id, C)
        .join(C, C.c.id == M.c.customer_id)
        .where(M.c.customer_group_id.in_(list(group_ids)), C.c.deleted_at.is_(None))
        .order_by(M.c.created_at, C.c.id)
    )
    for row in conn.execute(query).mappings():
        result[row["customer_group_id"]].append(to_customer(row))
    return result


def groups_of_customers(
    conn: Connection, customer_ids: Sequence[str]
) -> dict[str, list[CustomerGroup]]:
    """Live groups of each customer, for ``fields=*groups``."""
    result: dict[str, list[CustomerGroup]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return result
    query = (
        select(M.c.customer_id, G)
        .join(G, G.c.id == M.c.customer_group_id)
        .where(M.c.customer_id.in_(list(customer_ids)), G.c.deleted_at.is_(None))
        .order_by(G.c.name, G.c.id)
    )
    for row in conn.execute(query).mappings():
        result[row["customer_id"]].append(to_group(row))
    return result


def members_json_of_groups(
    conn: Connection, group_ids: Sequence[str], fields: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Live customers of each group as ``{field: value}`` of ``fields`` (columns of
    ``customer``), in the order of :func:`members_of_groups`: the rows of ``fields=*customers``.

    Built straight from the rows, without an entity per member; timestamps stay ``datetime``
    for the JSON encoder (see :func:`_append_rows`).
    """
    query = _related_query(conn.dialect.name, "members", tuple(fields))
    return _related_json(conn, query, group_ids, fields)


def groups_json_of_customers(
    conn: Connection, customer_ids: Sequence[str], fields: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Live groups of each customer as ``{field: value}`` of ``fields`` (columns of
    ``customer_group``), in the order of :func:`groups_of_customers`: ``fields=*groups``."""
    query = _related_query(conn.dialect.name, "groups", tuple(fields))
    return _related_json(conn, query, customer_ids, fields)


@lru_cache(maxsize=64)
def _related_query(dialect: str, relation: str, fields: tuple[str, ...]) -> str:
    """The driver's SELECT of the selected columns, then the owner's id (last), for a list of
    owners bound as one parameter (an array on PostgreSQL, a JSON array on SQLite)."""
    table, owner, join, order = (
        ("customer", "customer_group_id", "t.id = m.customer_id", "m.created_at, t.id")
        if relation == "members"
        else ("customer_group", "customer_id", "t.id = m.customer_group_id", "t.name, t.id")
    )
    owners = "= ANY(%s)" if dialect == "postgresql" else "IN (SELECT value FROM json_each(?))"
    columns = ", ".join(f"t.{name}" for name in fields)
    return (
        f"SELECT {columns}, m.{owner} FROM {M.name} m JOIN {table} t ON {join}"
        f" WHERE m.{owner} {owners} AND t.deleted_at IS NULL ORDER BY {order}"
    )


def _related_json(
    conn: Connection, query: str, owners: Sequence[str], fields: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The rows as the driver decodes them (no SQLAlchemy type processing per value, no
    entity per row), each value converted here only where the column type would change it."""
    result: dict[str, list[dict[str, Any]]] = {owner: [] for owner in owners}
    if not owners:
        return result
    postgres = conn.dialect.name == "postgresql"
    for part in chunks(owners):
        # through SQLAlchemy's driver-level call: its errors and events (a lost connection is
        # recognised and the read retried) without a column type to apply to every value
        params = (list(part),) if postgres else (json.dumps(list(part)),)
        rows = conn.exec_driver_sql(query, params).all()
        if postgres:
            raw = conn.connection.driver_connection
            _append_rows(rows, fields, result, _postgres_converters(fields, raw))
        else:
            _append_rows(rows, fields, result, _sqlite_converters(tuple(fields)))
    return result


Converters = tuple[tuple[int, str, Callable[[Any], Any]], ...]


def _append_rows(
    rows: Sequence[Any], fields: Sequence[str], into: dict[str, list[dict[str, Any]]],
    converters: Converters,
) -> None:  # fmt: skip
    """Append each row (``fields`` then the owner's id) to ``into[owner]`` as a dict."""
    for row in rows:
        item = dict(zip(fields, row, strict=False))
        for index, name, convert in converters:
            value = row[index]
            if value is not None:
                item[name] = convert(value)
        into[row[-1]].append(item)


_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Etc/Universal", "Zulu"})


def _postgres_converters(fields: Sequence[str], raw: Any) -> Converters:
    """psycopg decodes every column already; its timestamps carry the session's time zone,
    moved to UTC here unless the session is in UTC (the JSON encoder writes UTC as ``Z``)."""
    if str(raw.info.timezone) in _UTC_ZONES:
        return ()
    return tuple((index, name, _to_utc) for index, name in enumerate(fields) if name in _TIMESTAMPS)


@lru_cache(maxsize=64)
def _sqlite_converters(fields: tuple[str, ...]) -> Converters:
    """sqlite3 returns timestamps as text (naive UTC, which the JSON encoder takes as UTC),
    JSON as text and booleans as integers."""
    out: list[tuple[int, str, Callable[[Any], Any]]] = []
    for index, name in enumerate(fields):
        if name in _TIMESTAMPS:
            out.append((index, name, datetime.fromisoformat))
        elif name in _JSON:
            out.append((index, name, json.loads))
        elif name in _BOOLEANS:
            out.append((index, name, bool))
    return tuple(out)


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _columns_of_type(kind: type) -> frozenset[str]:
    return frozenset(
        column.name for table in (C, G) for column in table.c if isinstance(column.type, kind)
    )


_TIMESTAMPS = _columns_of_type(tables.UTCDateTime)
_JSON = _columns_of_type(JSON)
_BOOLEANS = _columns_of_type(Boolean)
