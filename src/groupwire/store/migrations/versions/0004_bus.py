"""Redis Streams bus: publish cursor and per-subscriber handled progress

Revision ID: 0004_bus
Revises: 0003_webhooks
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import groupwire.store.tables

revision = "0004_bus"
down_revision = "0003_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bus_cursor",
        sa.Column("bus", sa.String(length=255), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bus", name=op.f("pk_bus_cursor")),
    )
    op.create_table(
        "bus_progress",
        sa.Column("bus", sa.String(length=255), nullable=False),
        sa.Column("subscriber", sa.String(length=255), nullable=False),
        sa.Column("stream", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bus", "subscriber", "stream", name=op.f("pk_bus_progress")),
    )


def downgrade() -> None:
    op.drop_table("bus_progress")
    op.drop_table("bus_cursor")
