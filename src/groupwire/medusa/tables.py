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
the index on (group, customer) finds (revision ``0013_medusa_membership_pairs``).

They are created by Groupwire's migrations like every other table (revision
``0011_medusa_capture``, written with plain Alembic operations so that the core's migrations
import nothing of this adapter); they stay empty in a store that never captures. They are
declared here, on a metadata of the adapter's own, for the adapter's queries.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    delete,
    inspect,
)

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


def exists(engine: Engine) -> bool:
    """Whether the store has the bookkeeping tables (it is migrated far enough)."""
    names = set(inspect(engine).get_table_names())
    return {medusa_stream.name, medusa_membership.name} <= names


def require(engine: Engine) -> None:
    """Refuse to capture into a store whose schema is older than capture."""
    if not exists(engine):
        raise RuntimeError(
            "this Groupwire store has no medusa_stream table: run `groupwire migrate` first"
        )


def forget(engine: Engine, slot: str) -> None:
    """Forget the slot's position and the membership map (``groupwire medusa uninstall
    --forget``); the next capture starts over with a new slot and a fresh copy."""
    with engine.begin() as conn:
        conn.execute(delete(medusa_stream).where(medusa_stream.c.slot == slot))
        conn.execute(delete(medusa_membership))


__all__ = ["exists", "forget", "medusa_membership", "medusa_stream", "metadata", "require"]
