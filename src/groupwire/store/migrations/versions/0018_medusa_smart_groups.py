"""medusa smart groups: the rules of Medusa's groups, the reconciler's intents and counters

Revision ID: 0018_medusa_smart_groups
Revises: 0017_smart_group_flips
Create Date: 2026-12-08

Beside a running Medusa the group rows of the copy are Medusa's: a smart group's rule lives
in ``medusa_smart_group``; ``medusa_rule_intent`` holds the memberships the reconciler asked
Medusa to add or remove until capture brings them back; ``medusa_reconciler`` its counters.
Plain operations: the core's migrations import nothing of the Medusa adapter.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import groupwire.store.tables

revision = "0018_medusa_smart_groups"
down_revision = "0017_smart_group_flips"
branch_labels = None
depends_on = None

TIME = groupwire.store.tables.UTCDateTime


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "medusa_smart_group",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("rule", json, nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_medusa_smart_group")),
    )
    op.create_table(
        "medusa_rule_intent",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_group_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("lsn", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medusa_rule_intent")),
    )
    op.create_index(
        "ix_medusa_rule_intent_pair",
        "medusa_rule_intent",
        ["customer_group_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "medusa_reconciler",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("added", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.BigInteger(), nullable=False),
        sa.Column("reverted", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("last_pass_at", TIME, nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_medusa_reconciler")),
    )


def downgrade() -> None:
    op.drop_table("medusa_reconciler")
    op.drop_index("ix_medusa_rule_intent_pair", table_name="medusa_rule_intent")
    op.drop_table("medusa_rule_intent")
    op.drop_table("medusa_smart_group")
