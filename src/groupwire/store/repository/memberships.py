"""Memberships, as a change of a group's members reads and writes them: the scope read in lock
order before the write, the members among given ids, inserts and deletes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from groupwire.domain.models import CustomerGroup
from groupwire.store import bulk
from groupwire.store.repository.customers import share_lock_customers
from groupwire.store.repository.groups import get_group
from groupwire.store.repository.rows import G, M, to_group
from groupwire.store.repository.statements import _sql, id_chunks


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
        params = next(id_chunks(conn, customer_ids), {"ids": "[]"})
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
    for params in id_chunks(conn, customer_ids):
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
    for params in id_chunks(conn, customer_ids):
        rows = statement.execute(conn, {"group_id": group_id, "at": at, "by": by, **params})
        added.update(rows.scalars().all())
    return added


def delete_memberships(conn: Connection, group_id: str, customer_ids: Sequence[str]) -> set[str]:
    """Delete memberships; returns the customer ids whose row was really deleted."""
    deleted: set[str] = set()
    for params in id_chunks(conn, customer_ids):
        result = conn.execute(_sql(conn).delete_members, {"group_id": group_id, **params})
        deleted.update(result.scalars().all())
    return deleted


def all_memberships(conn: Connection) -> set[tuple[str, str]]:
    query = select(M.c.customer_group_id, M.c.customer_id)
    return {(row[0], row[1]) for row in conn.execute(query)}
