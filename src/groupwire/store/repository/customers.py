"""Customers: read (one, many, or only which ids are live), share-lock, check an email's
uniqueness, insert, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.filters import Filter, Search
from groupwire.domain.models import Customer
from groupwire.store import filters
from groupwire.store.repository.listing import _page, _time_filters
from groupwire.store.repository.rows import C, M, to_customer
from groupwire.store.repository.statements import _EMAIL_TAKEN, _INSERT, _sql, _taken, id_chunks


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
    for params in id_chunks(conn, customer_ids):
        for row in conn.execute(_sql(conn).customers, params).mappings().all():
            found[row["id"]] = to_customer(row)
    return found


def live_customer_ids(conn: Connection, customer_ids: Sequence[str]) -> set[str]:
    """Which of these ids are live customers: ids only, no rows built, no lock."""
    found: set[str] = set()
    for params in id_chunks(conn, customer_ids):
        found.update(conn.execute(_sql(conn).live_customer_ids, params).scalars().all())
    return found


def share_lock_customers(conn: Connection, customer_ids: Sequence[str]) -> set[str]:
    """Key-share-lock live customers (so none is deleted under us); returns the ids found."""
    found: set[str] = set()
    for params in id_chunks(conn, sorted(customer_ids)):
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
