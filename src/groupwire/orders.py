"""``gw.orders``: the order ledger smart groups' rules read (see
:mod:`groupwire.service.orders`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from groupwire.domain.changes import Context
from groupwire.domain.errors import NotFound
from groupwire.domain.orders import RecordedOrder
from groupwire.service.orders import OrderRecord
from groupwire.store import orders as ledger
from groupwire.store.engine import read_retrying

if TYPE_CHECKING:
    from groupwire.app import Groupwire


class Orders:
    """Record orders by their shop's id (an upsert) and read them back."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw

    def record(
        self, order_id: str, *, context: Context | None = None, **fields: Any
    ) -> OrderRecord:
        """Fields: customer_id, currency_code, total (major units), status (Medusa's),
        placed_at, canceled_at; a new order needs the first three."""
        return self._gw.service.record_order(order_id, context=context, **fields)

    def get(self, order_id: str) -> RecordedOrder:
        order = read_retrying(self._gw.engine, lambda conn: ledger.get_order(conn, order_id))
        if order is None:
            raise NotFound("order", order_id)
        return order

    def list(self, *, customer_id: str | None = None) -> list[RecordedOrder]:
        return read_retrying(
            self._gw.engine, lambda conn: ledger.list_orders(conn, customer_id=customer_id)
        )
