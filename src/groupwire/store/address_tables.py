"""The ``customer_address`` table (Medusa's customer module keeps addresses the same way).

Addresses are soft-deleted (``deleted_at``), like customers. "At most one default shipping and
one default billing address per customer" is a partial unique index over the live rows, so a
deleted default never blocks a new one.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Table, Text, text

from groupwire.store.tables import Id, Json, UTCDateTime, metadata

LIVE_DEFAULT_SHIPPING = "is_default_shipping AND deleted_at IS NULL"
LIVE_DEFAULT_BILLING = "is_default_billing AND deleted_at IS NULL"

customer_address = Table(
    "customer_address",
    metadata,
    Column("id", Id, primary_key=True),
    Column("customer_id", Id, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False),
    Column("address_name", Text, nullable=True),
    Column("is_default_shipping", Boolean, nullable=False, server_default=text("false")),
    Column("is_default_billing", Boolean, nullable=False, server_default=text("false")),
    Column("company", Text, nullable=True),
    Column("first_name", Text, nullable=True),
    Column("last_name", Text, nullable=True),
    Column("address_1", Text, nullable=True),
    Column("address_2", Text, nullable=True),
    Column("city", Text, nullable=True),
    Column("country_code", Text, nullable=True),
    Column("province", Text, nullable=True),
    Column("postal_code", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("metadata", Json, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Index("ix_customer_address_customer_id", "customer_id"),
    Index(
        "uq_customer_address_default_shipping",
        "customer_id",
        unique=True,
        sqlite_where=text(LIVE_DEFAULT_SHIPPING),
        postgresql_where=text(LIVE_DEFAULT_SHIPPING),
    ),
    Index(
        "uq_customer_address_default_billing",
        "customer_id",
        unique=True,
        sqlite_where=text(LIVE_DEFAULT_BILLING),
        postgresql_where=text(LIVE_DEFAULT_BILLING),
    ),
)
