"""routing version: outbox_counter.routing_version

Revision ID: 0012_routing_version
Revises: 0011_medusa_capture
Create Date: 2026-11-30

A count of the changes to what decides where events go (webhook endpoints), bumped under the
outbox counter's row lock and read back by every commit that writes events: a subscriber
that caches such configuration knows, for the events a commit hands it, whether its copy
still holds (see ``groupwire.store.unit_of_work.change_routing``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_routing_version"
down_revision = "0011_medusa_capture"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_counter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("routing_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_counter", schema=None) as batch_op:
        batch_op.drop_column("routing_version")
