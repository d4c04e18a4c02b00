"""medusa orders: capture's copy of Medusa's order and order_summary rows

Revision ID: 0014_medusa_orders
Revises: 0013_order_ledger
Create Date: 2026-12-08

Declared in ``groupwire.medusa.tables``: ``medusa_order`` (what an order's facts need of
Medusa's ``order`` row: customer, currency, status, draft or not, version, times) and
``medusa_order_summary`` (per summary row: its order, version and ``current_order_total``).
Written with plain operations: the core's migrations import nothing of the Medusa adapter.
Both stay empty in a store that never captures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import groupwire.store.tables

revision = "0014_medusa_orders"
down_revision = "0013_order_ledger"
branch_labels = None
depends_on = None

UTC = groupwire.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "medusa_order",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("currency_code", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("is_draft_order", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("canceled_at", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=True),
        sa.Column("updated_at", UTC(timezone=True), nullable=True),
        sa.Column("deleted_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medusa_order")),
    )
    op.create_table(
        "medusa_order_summary",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("total", sa.Numeric(30, 4), nullable=True),
        sa.Column("updated_at", UTC(timezone=True), nullable=True),
        sa.Column("deleted_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medusa_order_summary")),
    )
    with op.batch_alter_table("medusa_order_summary", schema=None) as batch_op:
        batch_op.create_index(
            "ix_medusa_order_summary_order_id_version", ["order_id", "version"], unique=False
        )


def downgrade() -> None:
    op.drop_table("medusa_order_summary")
    op.drop_table("medusa_order")
