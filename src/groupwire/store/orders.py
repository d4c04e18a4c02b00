"""Reads and writes of the order ledger (``customer_order``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from groupwire.domain.orders import RecordedOrder
from groupwire.domain.rules import Order
from groupwire.store.order_tables import customer_order

O = customer_order  # noqa: E741
_GET = select(O).where(O.c.id == bindparam("id"))
_INSERT = insert(O)
_UPDATE = update(O).where(O.c.id == bindparam("b_id"))
_QUANTUM = Decimal("0.0001")


def _order(row: Any) -> RecordedOrder:
    values = dict(row)
    values["total"] = Decimal(values["total"]).quantize(_QUANTUM).normalize()
    if values["total"] == 0:
        values["total"] = Decimal(0)
    return RecordedOrder(**values)


def lock_order_id(conn: Connection, order_id: str) -> None:
    """Serialise the recording of one order id until the commit (PostgreSQL: an advisory
    lock on its hash; SQLite's writers are serialised already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(order_id, 21))))


def get_order(conn: Connection, order_id: str) -> RecordedOrder | None:
    row = conn.execute(_GET, {"id": order_id}).mappings().first()
    return _order(row) if row else None


def insert_order(conn: Connection, order: RecordedOrder) -> None:
    conn.execute(_INSERT, {name: getattr(order, name) for name in (c.name for c in O.columns)})


def update_order(conn: Connection, order_id: str, values: dict[str, Any]) -> None:
    conn.execute(_UPDATE, {**values, "b_id": order_id})


def orders_of(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[Order]]:
    """What rules read of each customer's orders (every order, counted or not)."""
    found: dict[str, list[Order]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return found
    query = select(O.c.customer_id, O.c.currency_code, O.c.total, O.c.status, O.c.placed_at).where(
        O.c.customer_id.in_(list(customer_ids))
    )
    for cid, currency, total, status, placed_at in conn.execute(query):
        found[cid].append(Order(currency, Decimal(total).quantize(_QUANTUM), status, placed_at))
    return found


def list_orders(conn: Connection, customer_id: str | None = None) -> list[RecordedOrder]:
    query = select(O).order_by(O.c.created_at, O.c.id)
    if customer_id is not None:
        query = query.where(O.c.customer_id == customer_id)
    return [_order(row) for row in conn.execute(query).mappings()]
