"""Reading and writing customer addresses. Plain functions over a connection; the rules (one
default of each kind, hooks, events) live in ``groupwire.service.addresses``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.addresses import CustomerAddress
from groupwire.store import repository as repo
from groupwire.store.address_tables import customer_address
from groupwire.store.repository.listing import _page
from groupwire.store.repository.rows import _build

A = customer_address

# Medusa's searchable address columns: what ``q`` matches (case-insensitively, anywhere).
SEARCHABLE = (
    "address_name",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
)
# Columns that take an exact-match filter (one value or any of several).
FILTERABLE = ("company", "city", "country_code", "province", "postal_code")


def to_address(row: RowMapping) -> CustomerAddress:
    return _build(CustomerAddress, row)


def get_address(conn: Connection, customer_id: str, address_id: str) -> CustomerAddress | None:
    """The live address ``address_id`` of ``customer_id`` (another customer's is None)."""
    query = select(A).where(
        A.c.id == address_id, A.c.customer_id == customer_id, A.c.deleted_at.is_(None)
    )
    row = conn.execute(query).mappings().first()
    return to_address(row) if row else None


def insert_address(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(A).values(**values))


def live_defaults(
    conn: Connection, customer_id: str, flag: str, *, except_id: str | None = None
) -> list[CustomerAddress]:
    """The live addresses of a customer whose ``flag`` (a default kind) is set."""
    query = select(A).where(
        A.c.customer_id == customer_id, A.c[flag].is_(True), A.c.deleted_at.is_(None)
    )
    if except_id is not None:
        query = query.where(A.c.id != except_id)
    return [to_address(row) for row in conn.execute(query.order_by(A.c.id)).mappings()]


def live_addresses_of(conn: Connection, customer_id: str) -> list[CustomerAddress]:
    query = (
        select(A)
        .where(A.c.customer_id == customer_id, A.c.deleted_at.is_(None))
        .order_by(A.c.created_at, A.c.id)
    )
    return [to_address(row) for row in conn.execute(query).mappings()]


def addresses_of_customers(
    conn: Connection, customer_ids: Sequence[str]
) -> dict[str, list[CustomerAddress]]:
    """Live addresses of each customer, oldest first, for ``fields=*addresses``."""
    result: dict[str, list[CustomerAddress]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return result
    query = (
        select(A)
        .where(A.c.customer_id.in_(list(customer_ids)), A.c.deleted_at.is_(None))
        .order_by(A.c.created_at, A.c.id)
    )
    for row in conn.execute(query).mappings():
        result[row["customer_id"]].append(to_address(row))
    return result


def list_addresses(
    conn: Connection,
    customer_id: str,
    *,
    q: str | None = None,
    filters: dict[str, Sequence[str]] | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CustomerAddress], int]:
    """A page of a customer's live addresses; ``filters`` maps a FILTERABLE column to the
    values it may take."""
    where: list[ColumnElement[bool]] = [A.c.customer_id == customer_id, A.c.deleted_at.is_(None)]
    if q:
        pattern = repo.like_pattern(q.lower())
        where.append(
            or_(
                *(
                    func.lower(func.coalesce(A.c[name], "")).like(pattern, escape="\\")
                    for name in SEARCHABLE
                )
            )
        )
    for name, values in (filters or {}).items():
        if name not in FILTERABLE:
            raise ValueError(f"not a filterable address column: {name}")
        if values:
            where.append(A.c[name].in_(list(values)))
    return _page(conn, select(A).where(*where), A, order, limit, offset, CustomerAddress)
