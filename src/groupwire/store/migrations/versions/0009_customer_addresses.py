"""customer addresses: Medusa's customer_address, soft-deleted, one live default of each kind

Revision ID: 0009_customer_addresses
Revises: 0008_idempotency_keys
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import groupwire.store.tables

revision = "0009_customer_addresses"
down_revision = "0008_idempotency_keys"
branch_labels = None
depends_on = None

UTC = groupwire.store.tables.UTCDateTime
LIVE_DEFAULT_SHIPPING = "is_default_shipping AND deleted_at IS NULL"
LIVE_DEFAULT_BILLING = "is_default_billing AND deleted_at IS NULL"


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "customer_address",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("address_name", sa.Text(), nullable=True),
        sa.Column(
            "is_default_shipping", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "is_default_billing", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("address_1", sa.Text(), nullable=True),
        sa.Column("address_2", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("country_code", sa.Text(), nullable=True),
        sa.Column("province", sa.Text(), nullable=True),
        sa.Column("postal_code", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("deleted_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_address_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_address")),
    )
    with op.batch_alter_table("customer_address", schema=None) as batch_op:
        batch_op.create_index("ix_customer_address_customer_id", ["customer_id"], unique=False)
        batch_op.create_index(
            "uq_customer_address_default_shipping",
            ["customer_id"],
            unique=True,
            sqlite_where=sa.text(LIVE_DEFAULT_SHIPPING),
            postgresql_where=sa.text(LIVE_DEFAULT_SHIPPING),
        )
        batch_op.create_index(
            "uq_customer_address_default_billing",
            ["customer_id"],
            unique=True,
            sqlite_where=sa.text(LIVE_DEFAULT_BILLING),
            postgresql_where=sa.text(LIVE_DEFAULT_BILLING),
        )


def downgrade() -> None:
    op.drop_table("customer_address")
