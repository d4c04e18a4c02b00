"""Medusa's ``order`` and ``order_summary`` rows -> Groupwire's order ledger (order facts).

An order fact (:mod:`groupwire.domain.orders`) is one Medusa order that is an order, not a
draft (``is_draft_order`` false), of a customer Groupwire's copy has:

- ``customer_id``, ``currency_code``, ``status`` (Medusa's, as is) and ``canceled_at`` come
  from the ``order`` row; a soft-deleted order is recorded as ``canceled`` (its
  ``canceled_at`` the deletion time unless it was canceled before);
- ``total`` is ``current_order_total`` of the order's summary whose ``version`` equals the
  order's ``version`` (Medusa writes a new summary per order version; until that summary
  comes, the newest one below it): what the order currently amounts to, net of refunds
  (a partial refund of 200 on 1,200 makes it 1,000; a refunded cancellation 0). A canceled
  order counts for no rule whatever its total (an unpaid canceled order's summary still
  shows its full total);
- ``placed_at``: the commit time of the Medusa transaction that made it an order (an order
  created as such, or a draft converted), or its ``created_at`` for the orders the initial
  copy imports.

Medusa makes one such change in several transactions (a cancellation takes four: the new
order version and its summary commit before the status), and within a transaction the order
row and its summary come in either order. So capture keeps a copy of what it needs of both
tables (``medusa_order``, ``medusa_order_summary``: an UPDATE carries the new row only, a
DELETE only the key), notes which orders a transaction touched, and at the end of the
transaction records each touched order's fact once, through the service layer
(:func:`groupwire.service.orders.record_order_in`): ``order.recorded`` for a new fact,
``order.updated`` with the changed fields, nothing when the fact did not change (a payment,
a summary rewritten with the same total, a new version of an unpaid order).

A row change older than the copy's row (a lower ``version``, or the same version and an
earlier ``updated_at``) is ignored: after ``order`` and ``order_summary`` were added to an
existing publication, capture copies the current orders (:func:`backfill`), and the stream
then delivers again changes that copy already holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection

from groupwire.domain.changes import Context
from groupwire.domain.errors import GroupwireError
from groupwire.domain.orders import (
    CANCELED,
    RecordedOrder,
    order_recorded,
    validate_order_id,
    validate_order_values,
)
from groupwire.medusa.pgoutput import UNCHANGED
from groupwire.medusa.tables import medusa_order, medusa_order_summary
from groupwire.service import AfterHook, Service
from groupwire.service.orders import record_order_in
from groupwire.store import orders as ledger
from groupwire.store import repository as repo
from groupwire.store import tables
from groupwire.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from groupwire.medusa.mapping import RowChange

log = logging.getLogger("groupwire.medusa")

ORDER_TABLE = "order"
SUMMARY_TABLE = "order_summary"
_ORDER_COLUMNS = (
    "customer_id",
    "currency_code",
    "status",
    "is_draft_order",
    "version",
    "canceled_at",
    "created_at",
    "updated_at",
    "deleted_at",
)
_QUANTUM = Decimal("0.0001")
O = medusa_order  # noqa: E741
S = medusa_order_summary


def summary_total(totals: Any) -> Decimal | None:
    """``current_order_total`` of a summary's ``totals`` (its exact ``raw_`` twin when
    there), in major units rounded to 4 decimals and never below 0; None when absent."""
    if not isinstance(totals, dict):
        return None
    raw = totals.get("raw_current_order_total")
    value = raw.get("value") if isinstance(raw, dict) else None
    if value is None:
        value = totals.get("current_order_total")
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return max(number, Decimal(0)).quantize(_QUANTUM, ROUND_HALF_EVEN)


def fact(order: dict[str, Any], total: Decimal | None, now: datetime) -> dict[str, Any] | None:
    """The ledger's fields for the order copy ``order`` (a ``medusa_order`` row) with its
    current ``total``; None when it is no fact (a draft, no customer, no total known)."""
    if order["is_draft_order"] or not order["customer_id"] or total is None:
        return None
    status, canceled_at = order["status"], order["canceled_at"]
    if order["deleted_at"] is not None:
        status, canceled_at = CANCELED, canceled_at or order["deleted_at"]
    if status == CANCELED and canceled_at is None:
        canceled_at = now
    return {
        "customer_id": order["customer_id"],
        "currency_code": order["currency_code"],
        "total": total,
        "status": status,
        "canceled_at": canceled_at if status == CANCELED else None,
    }


class OrderChanges:
    """The ``order`` and ``order_summary`` row changes of one Medusa transaction: the copy
    is written as they come (:meth:`change`), the facts at the end (:meth:`finish`)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn: Connection = uow.connection
        self.touched: dict[str, None] = {}  # order ids, in the order first touched

    def change(self, change: RowChange) -> None:
        if change.table == ORDER_TABLE:
            self.order(change)
        else:
            self.summary(change)

    def order(self, change: RowChange) -> None:
        row = change.row
        order_id = str(row.raw("id"))
        current = self.conn.execute(select(O).where(O.c.id == order_id)).mappings().first()
        if change.operation == "delete":  # the key only
            if current is not None and current["deleted_at"] is None:
                self._update(O, order_id, {"deleted_at": self.uow.now})
                self.touched[order_id] = None
            return
        values = {
            name: row[name] for name in _ORDER_COLUMNS if name in row and row[name] is not UNCHANGED
        }
        if current is None:
            if not {"currency_code", "status", "version"} <= set(values):
                log.warning("order %s: a row without its currency, status or version", order_id)
                return
            values.setdefault("is_draft_order", False)
            self.conn.execute(insert(O).values(id=order_id, **values))
        else:
            if _older(values, current):
                return  # delivered again after the copy took a newer row (see module doc)
            self._update(O, order_id, values)
        self.touched[order_id] = None

    def summary(self, change: RowChange) -> None:
        row = change.row
        summary_id = str(row.raw("id"))
        current = self.conn.execute(select(S).where(S.c.id == summary_id)).mappings().first()
        if change.operation == "delete":  # the key only
            if current is not None:
                self.conn.execute(delete(S).where(S.c.id == summary_id))
                self.touched[current["order_id"]] = None
            return
        values: dict[str, Any] = {
            name: row[name]
            for name in ("order_id", "version", "updated_at", "deleted_at")
            if name in row and row[name] is not UNCHANGED
        }
        totals = row.get("totals")
        if totals is not UNCHANGED:  # (a TOASTed value an UPDATE left alone: keep the copy's)
            values["total"] = summary_total(totals)
        if current is None:
            if "order_id" not in values or "version" not in values:
                log.warning("order summary %s: a row without its order or version", summary_id)
                return
            self.conn.execute(insert(S).values(id=summary_id, **values))
            order_id = str(values["order_id"])
        else:
            if _older(values, current):
                return
            self._update(S, summary_id, values)
            order_id = str(values.get("order_id", current["order_id"]))
            self.touched[current["order_id"]] = None
        self.touched[order_id] = None

    def finish(self) -> None:
        """Record the fact of each order this transaction touched (once each)."""
        touched, self.touched = self.touched, {}
        for order_id in touched:
            self.record(order_id)

    def record(self, order_id: str) -> None:
        order = self.conn.execute(select(O).where(O.c.id == order_id)).mappings().first()
        if order is None:
            return  # a summary of an order the copy does not have
        total = current_total(self.conn, order_id, order["version"])
        values = fact(dict(order), total, self.uow.now)
        if values is None:
            return
        if ledger.get_order(self.conn, order_id) is None:
            values["placed_at"] = self.uow.now
        try:
            record_order_in(self.uow, order_id, **values)
        except GroupwireError as error:  # an unknown customer, a currency Groupwire refuses
            log.warning("order %s is not recorded: %s", order_id, error)

    def _update(self, table: Any, row_id: str, values: dict[str, Any]) -> None:
        if values:
            self.conn.execute(update(table).where(table.c.id == row_id).values(**values))


def _older(values: dict[str, Any], current: Any) -> bool:
    """Whether a row change's values are older than the copy's row (``version`` first, for
    the tables that have one, then ``updated_at``)."""
    version, known = values.get("version"), current.get("version")
    if isinstance(version, int) and isinstance(known, int) and version != known:
        return version < known
    at, known_at = values.get("updated_at"), current.get("updated_at")
    return isinstance(at, datetime) and isinstance(known_at, datetime) and at < known_at


def current_total(conn: Connection, order_id: str, version: int) -> Decimal | None:
    """The total of the order's summary of ``version``, else of the newest one below it."""
    return conn.execute(
        select(S.c.total)
        .where(
            S.c.order_id == order_id,
            S.c.version <= version,
            S.c.deleted_at.is_(None),
            S.c.total.is_not(None),
        )
        .order_by(S.c.version.desc())
        .limit(1)
    ).scalar()


# --- the initial copy -------------------------------------------------------------------------


@dataclass
class MedusaOrders:
    """Medusa's orders and summaries as one snapshot saw them (copy rows)."""

    orders: list[dict[str, Any]]
    summaries: list[dict[str, Any]]


def read_orders(conn: psycopg.Connection[Any], schema: str) -> MedusaOrders:
    """Read ``order`` and ``order_summary`` in ``conn``'s transaction (the slot's snapshot)."""
    from psycopg.rows import dict_row

    quoted = '"' + schema.replace('"', '""') + '"'
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f'SELECT id, {", ".join(_ORDER_COLUMNS)} FROM {quoted}."order" ORDER BY created_at, id'
        )
        orders = cursor.fetchall()
        cursor.execute(
            "SELECT id, order_id, version, totals, updated_at, deleted_at"
            f" FROM {quoted}.order_summary WHERE deleted_at IS NULL ORDER BY order_id, version"
        )
        summaries = [
            {**{k: v for k, v in r.items() if k != "totals"}, "total": summary_total(r["totals"])}
            for r in cursor.fetchall()
        ]
    return MedusaOrders(orders, summaries)


def import_orders(uow: UnitOfWork, state: MedusaOrders, *, emit: bool) -> int:
    """Write ``state`` as capture's copy and record the facts it holds (``placed_at``: each
    order's ``created_at``); with ``emit``, one ``order.recorded`` each. Orders the copy or
    the ledger has already are left to the stream (see :func:`backfill`). Returns the
    number of facts recorded."""
    conn = uow.connection
    known = {r[0] for r in conn.execute(select(O.c.id))}
    known_summaries = {r[0] for r in conn.execute(select(S.c.id))}
    new_orders = [r for r in state.orders if r["id"] not in known]
    new_summaries = [r for r in state.summaries if r["id"] not in known_summaries]
    for start in range(0, len(new_orders), 1000):
        conn.execute(insert(O), new_orders[start : start + 1000])
    for start in range(0, len(new_summaries), 1000):
        conn.execute(insert(S), new_summaries[start : start + 1000])
    totals: dict[tuple[str, int], Decimal] = {
        (r["order_id"], r["version"]): r["total"] for r in state.summaries if r["total"] is not None
    }
    by_order: dict[str, list[tuple[int, Decimal]]] = {}
    for (order_id, version), amount in totals.items():
        by_order.setdefault(order_id, []).append((version, amount))
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for order in new_orders:
        below = [v for v in by_order.get(order["id"], []) if v[0] <= order["version"]]
        total: Decimal | None = max(below)[1] if below else None
        values = fact(order, total, uow.now)
        if values is not None:
            candidates.append((order, values))
    live = _live_customers(conn, {values["customer_id"] for _, values in candidates})
    recorded = 0
    rows: list[RecordedOrder] = []
    for order, values in candidates:
        if values["customer_id"] not in live or ledger.get_order(conn, order["id"]) is not None:
            continue
        try:
            validate_order_id(order["id"])
            checked = validate_order_values(values)
        except GroupwireError as error:
            log.warning("order %s is not recorded: %s", order["id"], error)
            continue
        rows.append(
            RecordedOrder(
                id=order["id"],
                placed_at=order["created_at"] or uow.now,
                created_at=uow.now,
                updated_at=uow.now,
                **checked,
            )
        )
    for order_row in rows:
        ledger.insert_order(conn, order_row)
        if emit:
            uow.emit(order_recorded(order_row))
        recorded += 1
    return recorded


def resync_orders(uow: UnitOfWork, state: MedusaOrders) -> int:
    """Make capture's copy of the orders equal to ``state`` (Medusa's, as a re-sync's snapshot
    saw it) and record every fact that differs from the ledger through the service layer,
    with its event (``order.recorded`` for an order placed while capture was blind,
    ``order.updated`` for one cancelled, edited or refunded meanwhile); a fact the ledger
    already holds records nothing. Returns the number of facts recorded or changed."""
    conn = uow.connection
    conn.execute(delete(S))
    conn.execute(delete(O))
    for start in range(0, len(state.orders), 1000):
        conn.execute(insert(O), state.orders[start : start + 1000])
    for start in range(0, len(state.summaries), 1000):
        conn.execute(insert(S), state.summaries[start : start + 1000])
    by_order: dict[str, list[tuple[int, Decimal]]] = {}
    for r in state.summaries:
        if r["total"] is not None:
            by_order.setdefault(r["order_id"], []).append((r["version"], r["total"]))
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for order in state.orders:
        below = [v for v in by_order.get(order["id"], []) if v[0] <= order["version"]]
        values = fact(order, max(below)[1] if below else None, uow.now)
        if values is not None:
            candidates.append((order, values))
    live = _live_customers(conn, {values["customer_id"] for _, values in candidates})
    changed = 0
    for order, values in candidates:
        if values["customer_id"] not in live:
            continue
        if ledger.get_order(conn, order["id"]) is None:
            values = {**values, "placed_at": order["created_at"] or uow.now}
        try:
            record = record_order_in(uow, order["id"], **values)
        except GroupwireError as error:
            log.warning("order %s is not recorded: %s", order["id"], error)
            continue
        changed += bool(record.created or record.changes)
    return changed


def _live_customers(conn: Connection, customer_ids: set[str]) -> set[str]:
    C = tables.customer
    live: set[str] = set()
    for part in repo.chunks(sorted(customer_ids)):
        query = select(C.c.id).where(C.c.id.in_(list(part)), C.c.deleted_at.is_(None))
        live.update(r[0] for r in conn.execute(query))
    return live


def has_orders(engine: Engine) -> bool:
    """Whether capture's copy holds any Medusa order (else a resumed capture copies them)."""
    with engine.connect() as conn:
        return conn.execute(select(O.c.id).limit(1)).first() is not None


def backfill(service: Service, medusa_url: str, schema: str, *, emit: bool) -> int:
    """Copy Medusa's current orders into a capture installed before it read orders (the
    publication just gained ``order`` and ``order_summary``): the changes committed since
    the tables joined the publication come through the stream as well, and those the copy
    holds already are ignored (see the module doc). Returns the facts recorded."""
    from groupwire.medusa import slot as slots

    with slots.connect(medusa_url) as conn:
        conn.autocommit = False
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            state = read_orders(conn, schema)
        finally:
            conn.rollback()

    def work(uow: UnitOfWork) -> tuple[int, list[AfterHook]]:
        return import_orders(uow, state, emit=emit), []

    return service.apply_external_change(
        work, context=Context(correlation_id="medusa:orders"), durable=True
    )


__all__ = [
    "MedusaOrders",
    "OrderChanges",
    "backfill",
    "current_total",
    "fact",
    "has_orders",
    "import_orders",
    "read_orders",
    "resync_orders",
    "summary_total",
]
