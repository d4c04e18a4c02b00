"""event runs: one outbox row for the events of a bulk change

Revision ID: 0007_event_runs
Revises: 0006_ui_sessions
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_event_runs"
down_revision = "0006_ui_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("span", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
        batch_op.add_column(sa.Column("spread", sa.Text(), nullable=True))


def downgrade() -> None:
    runs = op.get_bind().execute(sa.text("SELECT count(*) FROM event WHERE span > 1")).scalar()
    if runs:
        raise RuntimeError(
            f"{runs} event rows hold runs of a bulk change; the older schema cannot store them"
        )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("spread")
        batch_op.drop_column("span")
