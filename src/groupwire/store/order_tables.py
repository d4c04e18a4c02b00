"""The order ledger: what smart groups' rules read of a customer's orders.

One row per order of any shop (the id is the shop's own), written through
``Service.record_order`` (the Admin API's ``POST /admin/orders``) and, beside a Medusa store,
by capture. ``total`` is in major units, as Medusa's amounts are; a canceled or draft order
counts for no rule (:data:`groupwire.domain.rules.UNCOUNTED_STATUSES`). No foreign key to
``customer``: an order may be recorded before its customer is.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, Numeric, String, Table, text

from groupwire.store.tables import Id, UTCDateTime, metadata

customer_order = Table(
    "customer_order",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("customer_id", Id, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("total", Numeric(20, 4), nullable=False),
    Column("status", String(32), nullable=False),
    Column("placed_at", UTCDateTime, nullable=True),
    Column("canceled_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Index("ix_customer_order_customer_id_placed_at", "customer_id", "placed_at"),
)
