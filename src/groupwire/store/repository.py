"""Reading and writing rows. Plain functions over a connection; no business rules here.

Row locks (``FOR UPDATE`` / ``FOR KEY SHARE``) matter on PostgreSQL and are ignored by SQLite,
whose write transactions are serialised by ``BEGIN IMMEDIATE`` anyway. Lock order, everywhere:
customers first (by id), then groups (by id), then the outbox counter at commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Select,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.filters import Filter, Search
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.store import bulk, filters, tables
from groupwire.store.engine import CompiledOnce

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


# --- mapping ---------------------------------------------------------------------------------


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


# --- customer groups -------------------------------------------------------------------------


# Statements on the hot path are built once per dialect: SQLAlchemy then reuses their
# memoized cache keys and compiled forms instead of rebuilding them on every call. A list of
# ids is bound as one parameter: an array on PostgreSQL (``= ANY(:ids)``), a JSON array read
# by ``json_each`` on SQLite (an expanded ``IN`` list would cost a parameter per id, compiled
# anew for every length, and SQLite takes at most 32,766 parameters a statement).
@dataclass(frozen=True)
class _Statements:
    group: Select[Any]
    group_locked: Select[Any]
    group_key_shared: Select[Any]
    groups_locked: Select[Any]
    customer: Select[Any]
    customer_locked: Select[Any]
    customer_no_key_locked: Select[Any]
    customers: Select[Any]
    customers_share_locked: Select[Any]
    members_among: Select[Any]
    live_customer_ids: Select[Any]
    add_live_members: CompiledOnce
    insert_new_members: CompiledOnce | None
    group_scope: Select[Any] | None
    delete_members: Any
    chunk: int


@lru_cache(maxsize=4)
def _statements(dialect: str) -> _Statements:
    def among(column: Any) -> ColumnElement[bool]:
        if dialect == "postgresql":
            return column == any_(bindparam("ids", type_=ARRAY(String)))
        listed = func.json_each(bindparam("ids", type_=String)).table_valued("value")
        return column.in_(select(listed.c.value))

    group = select(G).where(G.c.id == bindparam("id"), G.c.deleted_at.is_(None))
    customer = select(C).where(C.c.id == bindparam("id"), C.c.deleted_at.is_(None))
    # SQLite: the group, how many of the ids are live customers, and which are members, at once
    group_scope = None
    if dialect != "postgresql":
        customers_counted = (
            select(func.count()).select_from(C).where(among(C.c.id), C.c.deleted_at.is_(None))
        )
        member_ids = select(func.json_group_array(M.c.customer_id)).where(
            M.c.customer_group_id == G.c.id, among(M.c.customer_id)
        )
        group_scope = group.add_columns(
            customers_counted.scalar_subquery().label("scope_customers"),
            member_ids.scalar_subquery().label("scope_members"),
        )
    # PostgreSQL: a few ids added at once, the members among them skipped by the insert
    insert_new_members = None
    if dialect == "postgresql":
        ids = bindparam("ids", type_=ARRAY(String))
        given = func.unnest(ids).table_valued("value").render_derived()
        insert_new_members = _insert_members(dialect, given.c.value)
    return _Statements(
        group=group,
        group_locked=group.with_for_update(),
        group_key_shared=group.with_for_update(read=True, key_share=True),
        groups_locked=select(G)
        .where(among(G.c.id), G.c.deleted_at.is_(None))
        .order_by(G.c.id)
        .with_for_update(),
        customer=customer,
        customer_locked=customer.with_for_update(),
        customer_no_key_locked=customer.with_for_update(key_share=True),
        customers=select(C).where(among(C.c.id), C.c.deleted_at.is_(None)),
        customers_share_locked=select(C.c.id)
        .where(among(C.c.id), C.c.deleted_at.is_(None))
        .order_by(C.c.id)
        .with_for_update(read=True, key_share=True),
        members_among=select(M.c.customer_id).where(
            M.c.customer_group_id == bindparam("group_id"), among(M.c.customer_id)
        ),
        live_customer_ids=select(C.c.id).where(among(C.c.id), C.c.deleted_at.is_(None)),
        add_live_members=_insert_members(dialect, C.c.id, among(C.c.id), C.c.deleted_at.is_(None)),
        insert_new_members=insert_new_members,
        group_scope=group_scope,
        delete_members=delete(M)
        .where(M.c.customer_group_id == bindparam("group_id"), among(M.c.customer_id))
        .returning(M.c.customer_id),
        chunk=50_000 if dialect == "postgresql" else 500_000,
    )


def _insert_members(dialect: str, customer_id: Any, *where: ColumnElement[bool]) -> CompiledOnce:
    """``INSERT ... SELECT :group_id, customer_id, :at, :by [WHERE ...] ON CONFLICT DO
    NOTHING RETURNING customer_id`` into the membership table: the primary key skips the
    members already there, and RETURNING names only the rows inserted. (A ``NOT EXISTS``
    anti-join did the same, but PostgreSQL planned it against a young, small membership
    table as a nested loop over a sequential scan of the rows being inserted: quadratic.)"""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    chosen = select(
        bindparam("group_id", type_=String),
        customer_id,
        bindparam("at", type_=tables.UTCDateTime),
        bindparam("by", type_=String),
    )
    if where:
        chosen = chosen.where(*where)
    return CompiledOnce(
        insert(M)
        .from_select(["customer_group_id", "customer_id", "created_at", "created_by"], chosen)
        .on_conflict_do_nothing(index_elements=[M.c.customer_group_id, M.c.customer_id])
        .returning(M.c.customer_id)
    )


def _sql(conn: Connection) -> _Statements:
    return _statements(conn.dialect.name)


def _id_chunks(conn: Connection, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    """``{"ids": [...]}`` parameter sets covering ``ids``, as large as the dialect allows."""
    postgres = conn.dialect.name == "postgresql"
    for part in chunks(ids, _sql(conn).chunk):
        yield {"ids": list(part) if postgres else json.dumps(list(part))}


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
    for params in _id_chunks(conn, sorted(set(group_ids))):
        for row in conn.execute(_sql(conn).groups_locked, params).mappings().all():
            found[row["id"]] = to_group(row)
    return found


# The statements of single-row writes and uniqueness checks, built once and executed with
# their values as parameters: SQLAlchemy compiles each once (per set of columns written).
# Built per call with the values inside (``insert(C).values(**row)``), each call made a new
# statement and generated its cache key from every value: a third of the service's time in
# creating a customer went there.
def _uniqueness(table: Any, *where: ColumnElement[bool]) -> tuple[Select[Any], Select[Any]]:
    """Whether a live row has these values: alone, and excepting the row ``except_id``."""
    query = select(table.c.id).where(*where, table.c.deleted_at.is_(None)).limit(1)
    return query, query.where(table.c.id != bindparam("except_id"))


_GROUP_NAME_TAKEN = _uniqueness(G, G.c.name == bindparam("name"))
_EMAIL_TAKEN = _uniqueness(
    C, C.c.email == bindparam("email"), C.c.has_account == bindparam("has_account")
)
_INSERT = {G.name: insert(G), C.name: insert(C)}
_UPDATES: dict[str, Any] = {}


def _taken(
    conn: Connection,
    queries: tuple[Select[Any], Select[Any]],
    params: dict[str, Any],
    except_id: str | None,
) -> bool:
    if except_id:
        return conn.execute(queries[1], {**params, "except_id": except_id}).first() is not None
    return conn.execute(queries[0], params).first() is not None


def group_name_taken(conn: Connection, name: str, *, except_id: str | None = None) -> bool:
    return _taken(conn, _GROUP_NAME_TAKEN, {"name": name}, except_id)


def insert_group(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT[G.name], values)


def update_row(conn: Connection, table: Any, row_id: str, values: dict[str, Any]) -> None:
    """Set ``values`` (plain values, keyed by column) on the row ``row_id`` of ``table``."""
    statement = _UPDATES.get(table.name)
    if statement is None:
        statement = _UPDATES[table.name] = update(table).where(table.c.id == bindparam("b_row_id"))
    conn.execute(statement, {**values, "b_row_id": row_id})


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


# --- customers -------------------------------------------------------------------------------


def get_customer(
    conn: Connection, customer_id: str, *, lock: bool = False, no_key: bool = False
) -> Customer | None:
    """A live customer; ``lock``: locked for update until the commit (``no_key``: for an
    update of its fields, which lets other transactions still reference the row, as a new
    membership's foreign key does: PostgreSQL's ``FOR NO KEY UPDATE``)."""
    sql = _sql(conn)
    query = (
        sql.customer if not lock else sql.customer_no_key_locked if no_key else sql.customer_locked
    )
    row = conn.execute(query, {"id": customer_id}).mappings().first()
    return to_customer(row) if row else None


def get_customers(conn: Connection, customer_ids: Sequence[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for params in _id_chunks(conn, customer_ids):
        for row in conn.execute(_sql(conn).customers, params).mappings().all():
            found[row["id"]] = to_customer(row)
    return found


def live_customer_ids(conn: Connection, customer_ids: Sequence[str]) -> set[str]:
    """Which of these ids are live customers: ids only, no rows built, no lock."""
    found: set[str] = set()
    for params in _id_chunks(conn, customer_ids):
        found.update(conn.execute(_sql(conn).live_customer_ids, params).scalars().all())
    return found


def share_lock_customers(conn: Connection, customer_ids: Sequence[str]) -> set[str]:
    """Key-share-lock live customers (so none is deleted under us); returns the ids found."""
    found: set[str] = set()
    for params in _id_chunks(conn, sorted(customer_ids)):
        rows = conn.execute(_sql(conn).customers_share_locked, params)
        found.update(rows.scalars().all())
    return found


def email_taken(
    conn: Connection, email: str, *, has_account: bool, except_id: str | None = None
) -> bool:
    """Whether a live customer has this email and this ``has_account``: the pair is unique
    among live customers (as in Medusa), so a guest and an account may share an address."""
    params = {"email": email, "has_account": has_account}
    return _taken(conn, _EMAIL_TAKEN, params, except_id)


def insert_customer(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT[C.name], values)


def list_customers(
    conn: Connection,
    *,
    q: str | None = None,
    ids: Sequence[str] | None = None,
    emails: Sequence[str] | None = None,
    group_ids: Sequence[str] | None = None,
    where: Filter | None = None,
    created: dict[str, datetime] | None = None,
    updated: dict[str, datetime] | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Customer], int]:
    conditions: list[ColumnElement[bool]] = [C.c.deleted_at.is_(None)]
    dialect = conn.dialect.name
    if q:
        conditions.append(filters.condition(C, Search(q), dialect))
    if where is not None:
        conditions.append(filters.condition(C, where, dialect))
    if ids:
        conditions.append(C.c.id.in_(list(ids)))
    if emails:
        conditions.append(C.c.email.in_([e.strip().lower() for e in emails]))
    if group_ids:
        conditions.append(
            C.c.id.in_(select(M.c.customer_id).where(M.c.customer_group_id.in_(group_ids)))
        )
    conditions += _time_filters(C.c.created_at, created) + _time_filters(C.c.updated_at, updated)
    return _page(conn, select(C).where(*conditions), C, order, limit, offset, Customer)


# --- memberships -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MembershipScope:
    """What a change of a group's members needs to know before it writes."""

    group: CustomerGroup | None  # the live group (locked), or None
    missing: list[str]  # ids naming no live customer, in the given order
    members: set[str] | None  # ids already members of the group (None: not read)


def membership_scope(
    conn: Connection, group_id: str, customer_ids: Sequence[str], *, members: bool = True
) -> MembershipScope:
    """The group and the given customers, read in lock order: customers key-share-locked
    first, then the group locked, then its members among them. SQLite, whose write
    transaction already keeps every other writer out, reads all three in one statement when
    the group and every customer exist (the usual case: a single add is a few statements).

    ``members=False``, for a caller that only adds, with :func:`insert_new_memberships`: on
    PostgreSQL the members among them are not read (``members`` is None) and the group is
    key-share-locked only. That keeps it from being deleted (or its members changed by a
    removal, which locks it for update) until the commit, while other adds to the same group
    run at the same time: the primary key settles two adds of one customer (the second
    inserts nothing), and sequences still follow the commit order (the outbox counter)."""
    sql = _sql(conn)
    if sql.group_scope is not None and len(customer_ids) <= sql.chunk:
        params = next(_id_chunks(conn, customer_ids), {"ids": "[]"})
        row = conn.execute(sql.group_scope, {"id": group_id, **params}).mappings().first()
        if row is not None and row["scope_customers"] == len(customer_ids):
            return MembershipScope(to_group(row), [], set(json.loads(row["scope_members"])))
    found = share_lock_customers(conn, customer_ids)
    missing = [cid for cid in customer_ids if cid not in found]
    if missing:
        return MembershipScope(get_group(conn, group_id), missing, set())
    if not members:
        row = conn.execute(sql.group_key_shared, {"id": group_id}).mappings().first()
        return MembershipScope(to_group(row) if row else None, [], None)
    group = get_group(conn, group_id, lock=True)
    present = members_among(conn, group_id, customer_ids) if group is not None else set()
    return MembershipScope(group, [], present)


def members_among(conn: Connection, group_id: str, customer_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for params in _id_chunks(conn, customer_ids):
        rows = conn.execute(_sql(conn).members_among, {"group_id": group_id, **params})
        found.update(rows.scalars().all())
    return found


def member_ids(conn: Connection, group_id: str) -> list[str]:
    query = (
        select(M.c.customer_id)
        .where(M.c.customer_group_id == group_id)
        .order_by(M.c.created_at, M.c.customer_id)
    )
    return list(conn.execute(query).scalars())


def group_ids_of(conn: Connection, customer_id: str) -> list[str]:
    query = (
        select(M.c.customer_group_id)
        .join(G, G.c.id == M.c.customer_group_id)
        .where(M.c.customer_id == customer_id, G.c.deleted_at.is_(None))
        .order_by(M.c.customer_group_id)
    )
    return list(conn.execute(query).scalars())


def insert_memberships(
    conn: Connection, group_id: str, customer_ids: Iterable[str], at: datetime, by: str | None
) -> None:
    stamp = bulk.timestamp(conn, at)
    rows = [(group_id, cid, stamp, by) for cid in customer_ids]
    bulk.insert_rows(
        conn, M, ("customer_group_id", "customer_id", "created_at", "created_by"), rows
    )


def inserts_new_memberships(conn: Connection, count: int) -> bool:
    """Whether :func:`insert_new_memberships` serves ``count`` ids on ``conn``: on PostgreSQL,
    fewer than COPY takes (a bulk change's rows go through COPY, which skips nothing)."""
    return conn.dialect.name == "postgresql" and 0 < count < bulk.COPY_THRESHOLD


def insert_new_memberships(
    conn: Connection, group_id: str, customer_ids: Sequence[str], at: datetime, by: str | None
) -> set[str]:
    """Insert the memberships of the ids that are not members yet, in one statement (the
    check and the insert together, as ``INSERT ... ON CONFLICT DO NOTHING``); returns the
    ids inserted. PostgreSQL only (see :func:`inserts_new_memberships`)."""
    statement = _sql(conn).insert_new_members
    assert statement is not None, "PostgreSQL only"
    rows = statement.execute(
        conn, {"group_id": group_id, "ids": list(customer_ids), "at": at, "by": by}
    )
    return set(rows.scalars().all())


def add_live_memberships(
    conn: Connection, group_id: str, customer_ids: Sequence[str], at: datetime, by: str | None
) -> set[str]:
    """Make the live customers among ``customer_ids`` members of the group unless they are
    already, in one statement per chunk (no id list read back first); returns those added."""
    added: set[str] = set()
    statement = _sql(conn).add_live_members
    for params in _id_chunks(conn, customer_ids):
        rows = statement.execute(conn, {"group_id": group_id, "at": at, "by": by, **params})
        added.update(rows.scalars().all())
    return added


def delete_memberships(conn: Connection, group_id: str, customer_ids: Sequence[str]) -> set[str]:
    """Delete memberships; returns the customer ids whose row was really deleted."""
    deleted: set[str] = set()
    for params in _id_chunks(conn, customer_ids):
        result = conn.execute(_sql(conn).delete_members, {"group_id": group_id, **params})
        deleted.update(result.scalars().all())
    return deleted


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


def all_memberships(conn: Connection) -> set[tuple[str, str]]:
    query = select(M.c.customer_group_id, M.c.customer_id)
    return {(row[0], row[1]) for row in conn.execute(query)}


# --- the outbox counter (events themselves are read through ``event_log``) ---------------


def last_sequence(conn: Connection) -> int:
    return int(
        conn.execute(
            select(tables.outbox_counter.c.last_sequence).where(tables.outbox_counter.c.id == 1)
        ).scalar_one()
    )
