"""Groupwire's bookkeeping of a Medusa capture, in Groupwire's own database.

Medusa's tables are only ever read. What capture needs to remember lives here, written in the
same transaction as the Groupwire copy and events of each Medusa transaction it applies:

``medusa_stream``: per replication slot, the end LSN of the last Medusa commit applied. A
transaction at or below it was applied already and is skipped when the slot hands it out
again after a restart: this row is what makes the effect exactly once.

``medusa_membership``: Medusa's live membership row id -> (group, customer). Medusa deletes a
membership row outright and, with the default replica identity, the DELETE carries only the
row's ``id``; this map says which customer left which group. Medusa may hold several live
rows of one pair (no unique constraint): the pair is a member until the last one goes, which
the index on (group, customer) finds (revision ``0015_medusa_membership_pairs``).

``medusa_order`` and ``medusa_order_summary``: what capture keeps of Medusa's ``order`` and
``order_summary`` rows to tell an order's facts (``groupwire.medusa.orders``): an UPDATE
carries the new row only and a DELETE only the key, and an order's total is in the summary of
its current version, which may come in another row change, or transaction, than the order's.

They are created by Groupwire's migrations like every other table (revisions
``0011_medusa_capture``, ``0014_medusa_orders`` and ``0015_medusa_membership_pairs``, written
with plain Alembic operations so that the core's migrations import nothing of this adapter);
they stay empty in a store that never captures.

``medusa_smart_group``, ``medusa_rule_intent`` and ``medusa_reconciler`` (revision
``0018_medusa_smart_groups``): the rules of Medusa's smart groups (the copy's group rows are
Medusa's, so a rule lives beside them), the reconciler's requests to Medusa not yet seen back
through capture, and its counters (``groupwire.medusa.reconciler``).

They are declared here, on a metadata of the adapter's own, for the adapter's queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB

from groupwire.store.tables import NAMING, Id, UTCDateTime

metadata = MetaData(naming_convention=NAMING)

medusa_stream = Table(
    "medusa_stream",
    metadata,
    Column("slot", String(63), primary_key=True),
    Column("lsn", BigInteger, nullable=False),  # end LSN of the last applied commit
    Column("xid", BigInteger, nullable=True),
    Column("committed_at", UTCDateTime, nullable=True),  # that commit's time in Medusa
    Column("applied_at", UTCDateTime, nullable=False),
)

medusa_membership = Table(
    "medusa_membership",
    metadata,
    Column("id", String(255), primary_key=True),  # Medusa's customer_group_customer.id
    Column("customer_group_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Index("ix_medusa_membership_pair", "customer_group_id", "customer_id"),
)

medusa_order = Table(
    "medusa_order",
    metadata,
    Column("id", String(255), primary_key=True),  # Medusa's order.id
    Column("customer_id", String(255), nullable=True),
    Column("currency_code", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("is_draft_order", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("canceled_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
)

medusa_order_summary = Table(
    "medusa_order_summary",
    metadata,
    Column("id", String(255), primary_key=True),  # Medusa's order_summary.id
    Column("order_id", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("total", Numeric(30, 4), nullable=True),  # current_order_total; None: unknown
    Column("updated_at", UTCDateTime, nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
    Index("ix_medusa_order_summary_order_id_version", "order_id", "version"),
)

medusa_smart_group = Table(
    "medusa_smart_group",
    metadata,
    Column("group_id", Id, primary_key=True),  # Medusa's customer_group.id
    Column("rule", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
medusa_rule_intent = Table(
    "medusa_rule_intent",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("customer_group_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("action", String(8), nullable=False),  # "add" or "remove"
    Column("rule_version", Integer, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),  # written, before the request was sent
    Column("lsn", BigInteger, nullable=True),  # Medusa's WAL position after its answer
    Index("ix_medusa_rule_intent_pair", "customer_group_id", "customer_id"),
)
medusa_reconciler = Table(
    "medusa_reconciler",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("added", BigInteger, nullable=False),
    Column("removed", BigInteger, nullable=False),
    Column("reverted", BigInteger, nullable=False),  # manual changes the rule put back
    Column("failed", BigInteger, nullable=False),  # requests Medusa refused or never answered
    Column("last_pass_at", UTCDateTime, nullable=True),
    Column("last_error", String(1000), nullable=True),
)

TABLES = (medusa_stream, medusa_membership, medusa_order, medusa_order_summary)
SMART_TABLES = (medusa_smart_group, medusa_rule_intent, medusa_reconciler)


def exists(engine: Engine) -> bool:
    """Whether the store has the bookkeeping tables (it is migrated far enough)."""
    names = set(inspect(engine).get_table_names())
    return {table.name for table in TABLES} <= names


def require(engine: Engine) -> None:
    """Refuse to capture into a store whose schema is older than capture."""
    if not exists(engine):
        raise RuntimeError(
            "this Groupwire store lacks capture's tables (medusa_stream, medusa_order...):"
            " run `groupwire migrate` first"
        )


def forget(engine: Engine, slot: str) -> None:
    """Forget the slot's position and the membership map (``groupwire medusa uninstall
    --forget``); the next capture starts over with a new slot and a fresh copy."""
    with engine.begin() as conn:
        conn.execute(delete(medusa_stream).where(medusa_stream.c.slot == slot))
        conn.execute(delete(medusa_membership))
        conn.execute(delete(medusa_order_summary))
        conn.execute(delete(medusa_order))


__all__ = [
    "TABLES",
    "exists",
    "forget",
    "medusa_membership",
    "medusa_order",
    "medusa_order_summary",
    "medusa_stream",
    "metadata",
    "require",
]
