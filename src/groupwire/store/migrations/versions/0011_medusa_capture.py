"""medusa capture: the stream position and the membership map of a Medusa capture

Revision ID: 0011_medusa_capture
Revises: 0010_customer_email_optional
Create Date: 2026-11-30

The bookkeeping of ``groupwire medusa capture`` (declared in ``groupwire.medusa.tables``):
``medusa_stream``, per replication slot the end LSN of the last Medusa commit applied;
``medusa_membership``, Medusa's membership row id -> (group, customer). Written with plain
operations: the core's migrations import nothing of the Medusa adapter. Both stay empty in a
store that never captures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import groupwire.store.tables

revision = "0011_medusa_capture"
down_revision = "0010_customer_email_optional"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store that captured before this migration existed has the tables already (capture
    # created them itself then): adopt them.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "medusa_stream" not in existing:
        op.create_table(
            "medusa_stream",
            sa.Column("slot", sa.String(length=63), nullable=False),
            sa.Column("lsn", sa.BigInteger(), nullable=False),
            sa.Column("xid", sa.BigInteger(), nullable=True),
            sa.Column(
                "committed_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=True
            ),
            sa.Column(
                "applied_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False
            ),
            sa.PrimaryKeyConstraint("slot", name=op.f("pk_medusa_stream")),
        )
    if "medusa_membership" not in existing:
        op.create_table(
            "medusa_membership",
            sa.Column("id", sa.String(length=255), nullable=False),
            sa.Column("customer_group_id", sa.String(length=64), nullable=False),
            sa.Column("customer_id", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_medusa_membership")),
        )


def downgrade() -> None:
    op.drop_table("medusa_membership")
    op.drop_table("medusa_stream")
