"""medusa membership pairs: an index of the membership map by (group, customer)

Revision ID: 0015_medusa_membership_pairs
Revises: 0014_medusa_orders
Create Date: 2026-12-08

Medusa keeps no unique constraint on a membership's (group, customer): adding a member twice
writes two rows. Capture removes a member only when no live row of the pair is left in
``medusa_membership``, which it asks by (group, customer) for every removal. Plain operations:
the core's migrations import nothing of the Medusa adapter.
"""

from __future__ import annotations

from alembic import op

revision = "0015_medusa_membership_pairs"
down_revision = "0014_medusa_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_medusa_membership_pair",
        "medusa_membership",
        ["customer_group_id", "customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_medusa_membership_pair", table_name="medusa_membership")
