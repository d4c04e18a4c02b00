"""smart groups: customer_group.rule and rule_version, outbox_counter.rules_version

Revision ID: 0016_group_rules
Revises: 0015_medusa_membership_pairs
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016_group_rules"
down_revision = "0015_medusa_membership_pairs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("customer_group", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule", json, nullable=True))
        batch_op.add_column(
            sa.Column("rule_version", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("outbox_counter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rules_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_counter", schema=None) as batch_op:
        batch_op.drop_column("rules_version")
    with op.batch_alter_table("customer_group", schema=None) as batch_op:
        batch_op.drop_column("rule_version")
        batch_op.drop_column("rule")
