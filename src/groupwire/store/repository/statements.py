"""The statements the repository runs most, built once: per dialect for the hot path (reads and
writes of a list of ids bound as one parameter), and for single-row writes and uniqueness
checks, executed with their values as parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ARRAY, Select, String, any_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from groupwire.store import tables
from groupwire.store.engine import CompiledOnce
from groupwire.store.repository.rows import C, G, M, chunks


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


def id_chunks(conn: Connection, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    """``{"ids": [...]}`` parameter sets covering ``ids``, as large as the dialect allows."""
    postgres = conn.dialect.name == "postgresql"
    for part in chunks(ids, _sql(conn).chunk):
        yield {"ids": list(part) if postgres else json.dumps(list(part))}


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


def update_row(conn: Connection, table: Any, row_id: str, values: dict[str, Any]) -> None:
    """Set ``values`` (plain values, keyed by column) on the row ``row_id`` of ``table``."""
    statement = _UPDATES.get(table.name)
    if statement is None:
        statement = _UPDATES[table.name] = update(table).where(table.c.id == bindparam("b_row_id"))
    conn.execute(statement, {**values, "b_row_id": row_id})
