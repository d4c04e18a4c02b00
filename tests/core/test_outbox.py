"""The transactional outbox: a change and its events commit together or not at all."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy import event as sa_event

from groupwire.store.schema import metadata


class FailingEventInsert:
    """Makes the INSERT into the event table fail, after the change's own rows are written."""

    def __init__(self, engine):
        self.engine = engine
        self.armed = True

    def __enter__(self):
        sa_event.listen(self.engine, "before_cursor_execute", self.fail)
        return self

    def __exit__(self, *exc):
        sa_event.remove(self.engine, "before_cursor_execute", self.fail)

    def fail(self, conn, cursor, statement, parameters, context, executemany):
        normalised = statement.lstrip().upper().replace('"', "")
        # alone, or after taking the sequences in the same statement (PostgreSQL, one event)
        if self.armed and "INSERT INTO EVENT " in normalised:
            raise RuntimeError("crash while writing the outbox")


def test_a_change_whose_event_write_fails_is_rolled_back_entirely(gw):
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test")
    before = gw.events.last_sequence()

    with FailingEventInsert(gw.engine), pytest.raises(RuntimeError, match="outbox"):
        gw.groups.add_customers(vip.id, [ada.id])

    assert gw.groups.members(vip.id) == []
    assert gw.events.last_sequence() == before
    with FailingEventInsert(gw.engine), pytest.raises(RuntimeError):
        gw.groups.create(name="Trial")
    assert [g.name for g in gw.groups.list().items] == ["VIP"]

    gw.groups.add_customers(vip.id, [ada.id])
    assert [e.sequence for e in gw.events.list(after=before)] == [before + 1]


def test_sequences_are_gap_free_and_unique_across_rollbacks(gw):
    gw.groups.create(name="A")
    with FailingEventInsert(gw.engine), pytest.raises(RuntimeError):
        gw.groups.create(name="B")
    gw.groups.create(name="C")

    assert [e.sequence for e in gw.events.list()] == [1, 2]


def test_events_are_queryable_by_type_subject_time_and_cursor(gw):
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test")
    gw.groups.add_customers(vip.id, [ada.id])
    first, second, third = gw.events.list()

    assert [e.type for e in gw.events.list(type="customer_group.*")] == [first.type, third.type]
    assert [e.type for e in gw.events.list(type=["customer.created"])] == ["customer.created"]
    assert gw.events.list(subject=ada.id) == [second]
    assert gw.events.list(after=first.sequence, limit=1) == [second]
    assert gw.events.list(since=first.time, until=first.time) == []
    assert len(gw.events.list(since=first.time)) == 3
    assert gw.events.list(descending=True, limit=1) == [third]


def test_migrations_build_exactly_the_declared_schema(gw):
    # The core's tables, and the Medusa adapter's bookkeeping that a core migration creates.
    from groupwire.medusa.tables import metadata as medusa_metadata

    declared = MetaData()
    for table in [*metadata.tables.values(), *medusa_metadata.tables.values()]:
        table.to_metadata(declared)
    with gw.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), declared)
    assert differences == []


def test_migrations_form_one_line_of_history():
    from alembic.script import ScriptDirectory

    from groupwire.store.migrate import alembic_config

    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
