"""admin page sessions

Revision ID: 0006_ui_sessions
Revises: 0005_use_cases
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import groupwire.store.tables

revision = "0006_ui_sessions"
down_revision = "0005_use_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_session")),
    )
    with op.batch_alter_table("ui_session", schema=None) as batch_op:
        batch_op.create_index("ix_ui_session_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ui_session", schema=None) as batch_op:
        batch_op.drop_index("ix_ui_session_expires_at")
    op.drop_table("ui_session")
