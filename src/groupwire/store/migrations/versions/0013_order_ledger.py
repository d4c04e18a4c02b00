"""order ledger: customer_order, the orders smart groups' rules read

Revision ID: 0013_order_ledger
Revises: 0012_routing_version
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import groupwire.store.tables

revision = "0013_order_ledger"
down_revision = "0012_routing_version"
branch_labels = None
depends_on = None

UTC = groupwire.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "customer_order",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("total", sa.Numeric(20, 4), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("placed_at", UTC(timezone=True), nullable=True),
        sa.Column("canceled_at", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_order")),
    )
    with op.batch_alter_table("customer_order", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_order_customer_id_placed_at", ["customer_id", "placed_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("customer_order")
