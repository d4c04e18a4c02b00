"""rule sweeps: a sweep of smart_group_sweep says why it decides its customers again

Revision ID: 0019_rule_sweeps
Revises: 0018_medusa_smart_groups
Create Date: 2026-12-08

``trigger``: ``schedule`` (a rule reading time was applied to everyone: the scheduler writes
each customer's next flip, as before) or ``rule_changed`` (a rule saved with ``stream``: its
customers are decided in committed chunks, the joins and leaves carrying that trigger).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_rule_sweeps"
down_revision = "0018_medusa_smart_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "smart_group_sweep",
        sa.Column("trigger", sa.String(length=32), nullable=False, server_default="schedule"),
    )


def downgrade() -> None:
    with op.batch_alter_table("smart_group_sweep") as batch:
        batch.drop_column("trigger")
