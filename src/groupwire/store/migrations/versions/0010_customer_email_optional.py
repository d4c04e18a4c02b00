"""customer email optional: unique (email, has_account) among live customers, as in Medusa

Revision ID: 0010_customer_email_optional
Revises: 0009_customer_addresses
Create Date: 2026-11-29

Medusa 2.x stores customers without email and keeps (email, has_account) unique among live
rows (``IDX_customer_email_has_account_unique ... WHERE deleted_at IS NULL``). SQLite cannot
drop a NOT NULL in place: the batch operation rebuilds the table, which is why
:func:`groupwire.store.migrate.upgrade` turns SQLite's foreign keys off while migrating (a
rebuild drops the old table, and with foreign keys on that drop would cascade to the
memberships).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_customer_email_optional"
down_revision = "0009_customer_addresses"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.drop_index("uq_customer_email_live", table_name="customer")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=True)
    op.create_index(
        "uq_customer_email_has_account_live",
        "customer",
        ["email", "has_account"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    bind = op.get_bind()
    without = bind.execute(sa.text("SELECT count(*) FROM customer WHERE email IS NULL")).scalar()
    if without:
        raise RuntimeError(
            f"{without} customers have no email; the older schema requires one for each"
        )
    shared = bind.execute(
        sa.text(
            "SELECT count(*) FROM (SELECT email FROM customer WHERE deleted_at IS NULL"
            " GROUP BY email HAVING count(*) > 1) AS shared"
        )
    ).scalar()
    if shared:
        raise RuntimeError(
            f"{shared} emails belong to two live customers (with and without an account);"
            " the older schema allows one"
        )
    op.drop_index("uq_customer_email_has_account_live", table_name="customer")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=320), nullable=False)
    op.create_index(
        "uq_customer_email_live",
        "customer",
        ["email"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
