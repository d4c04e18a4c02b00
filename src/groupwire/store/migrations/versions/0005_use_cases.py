"""use cases: welcome emails, notification rules, the membership rollup

Revision ID: 0005_use_cases
Revises: 0004_bus
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import groupwire.store.tables

revision = "0005_use_cases"
down_revision = "0004_bus"
branch_labels = None
depends_on = None

UTC = groupwire.store.tables.UTCDateTime


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "welcome_email",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("start_sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_welcome_email")),
    )
    op.create_table(
        "notification_rule",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("emails", _json(), nullable=False),
        sa.Column("webhook_endpoint_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("start_sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_rule")),
    )
    with op.batch_alter_table("notification_rule", schema=None) as batch_op:
        batch_op.create_index("ix_notification_rule_group_id", ["group_id"], unique=False)
    op.create_table(
        "group_stats",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_group_stats")),
    )
    op.create_table(
        "group_stats_hourly",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", UTC(timezone=True), nullable=False),
        sa.Column("joins", sa.Integer(), nullable=False),
        sa.Column("leaves", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "bucket", name=op.f("pk_group_stats_hourly")),
    )


def downgrade() -> None:
    op.drop_table("group_stats_hourly")
    op.drop_table("group_stats")
    with op.batch_alter_table("notification_rule", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_rule_group_id")
    op.drop_table("notification_rule")
    op.drop_table("welcome_email")
