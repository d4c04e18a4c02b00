"""core schema

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import groupwire.store.tables

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("company_name", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("has_account", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(
            "uq_customer_email_live",
            ["email"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "customer_group",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_group")),
    )
    with op.batch_alter_table("customer_group", schema=None) as batch_op:
        batch_op.create_index(
            "uq_customer_group_name_live",
            ["name"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber", sa.String(length=255), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dead_letter_subscriber", ["subscriber", "replayed_at"], unique=False
        )

    op.create_table(
        "event",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=64), nullable=False),
        sa.Column("time", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("correlation_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_event")),
        sa.UniqueConstraint("id", name=op.f("uq_event_id")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_subject_sequence", ["subject", "sequence"], unique=False)
        batch_op.create_index("ix_event_time", ["time"], unique=False)
        batch_op.create_index("ix_event_type_sequence", ["type", "sequence"], unique=False)

    op.create_table(
        "outbox_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_counter")),
    )
    op.execute("INSERT INTO outbox_counter (id, last_sequence) VALUES (1, 0)")
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column(
            "processed_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_event")),
    )
    op.create_table(
        "subscriber_checkpoint",
        sa.Column("subscriber", sa.String(length=255), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", name=op.f("pk_subscriber_checkpoint")),
    )
    op.create_table(
        "customer_group_customer",
        sa.Column("customer_group_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", groupwire.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_group_id"],
            ["customer_group.id"],
            name=op.f("fk_customer_group_customer_customer_group_id_customer_group"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_group_customer_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_group_id", "customer_id", name=op.f("pk_customer_group_customer")
        ),
    )
    with op.batch_alter_table("customer_group_customer", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_group_customer_customer_id", ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_group_customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_group_customer_customer_id")

    op.drop_table("customer_group_customer")
    op.drop_table("subscriber_checkpoint")
    op.drop_table("processed_event")
    op.drop_table("outbox_counter")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_type_sequence")
        batch_op.drop_index("ix_event_time")
        batch_op.drop_index("ix_event_subject_sequence")

    op.drop_table("event")
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letter_subscriber")

    op.drop_table("dead_letter")
    with op.batch_alter_table("customer_group", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_customer_group_name_live",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("customer_group")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_customer_email_live",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("customer")
