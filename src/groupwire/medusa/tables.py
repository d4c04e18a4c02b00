"""Groupwire's bookkeeping of a Medusa capture, in Groupwire's own database.

Medusa's tables are only ever read. What capture needs to remember lives here, written in the
same transaction as the Groupwire copy and events of each Medusa transaction it applies:

``medusa_stream``: per replication slot, the end LSN of the last Medusa commit applied. A
transaction at or below it was applied already and is skipped when the slot hands it out
again after a restart: this row is what makes the effect exactly once.

``medusa_membership``: Medusa's membership row id -> (group, customer). Medusa deletes a
membership row outright and, with the default replica identity, the DELETE carries only the
row's ``id``; this map says which customer left which group.

These tables belong to the Medusa adapter, not to Groupwire's core schema: they have a
metadata of their own and are created (if missing) when capture starts, so a store that never
captures from Medusa never has them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table

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
)


def ensure(engine: Engine) -> None:
    """Create the bookkeeping tables when they are missing (safe to call at every start)."""
    metadata.create_all(engine, checkfirst=True)


def drop(engine: Engine) -> None:
    """Forget the capture's position and map (``groupwire medusa uninstall --forget``)."""
    metadata.drop_all(engine, checkfirst=True)


__all__ = ["drop", "ensure", "medusa_membership", "medusa_stream", "metadata"]
