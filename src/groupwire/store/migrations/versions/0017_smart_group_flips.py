"""smart group flips: the next moment each (smart group, customer) reading time is decided,
and the sweeps of rules reading time just applied to everyone

Revision ID: 0017_smart_group_flips
Revises: 0016_group_rules
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from groupwire.store.tables import UTCDateTime

revision = "0017_smart_group_flips"
down_revision = "0016_group_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smart_group_flip",
        sa.Column("customer_group_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("flip_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_group_id"],
            ["customer_group.id"],
            name="fk_smart_group_flip_customer_group_id_customer_group",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name="fk_smart_group_flip_customer_id_customer",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_group_id", "customer_id", name="pk_smart_group_flip"),
    )
    op.create_index("ix_smart_group_flip_flip_at", "smart_group_flip", ["flip_at"], unique=False)
    op.create_table(
        "smart_group_sweep",
        sa.Column("customer_group_id", sa.String(length=64), nullable=False),
        sa.Column("after_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_group_id"],
            ["customer_group.id"],
            name="fk_smart_group_sweep_customer_group_id_customer_group",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_group_id", name="pk_smart_group_sweep"),
    )


def downgrade() -> None:
    op.drop_table("smart_group_sweep")
    op.drop_index("ix_smart_group_flip_flip_at", table_name="smart_group_flip")
    op.drop_table("smart_group_flip")
