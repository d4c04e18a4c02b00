"""The events of a bulk change are stored as one outbox row (a run) and read back as events.

Nobody reading the log can tell: every cursor, filter and lookup sees one event per member,
with its own id and sequence, exactly as if each had been written on its own row.
"""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import func, select, text

from groupwire.domain import events as ev
from groupwire.domain.changes import Context
from groupwire.domain.ids import EVENT, new_ids, shifted_id
from groupwire.domain.models import Event
from groupwire.store import event_log, migrate, tables
from groupwire.store.engine import create_store_engine
from groupwire.store.unit_of_work import UnitOfWork

ADDED = ev.CUSTOMER_ADDED
REMOVED = ev.CUSTOMER_REMOVED
E = tables.event


def rows_of(gw, type_: str) -> list[tuple[int, int, str | None]]:
    with gw.engine.connect() as conn:
        query = select(E.c.sequence, E.c.span, E.c.spread).where(E.c.type == type_)
        return [tuple(row) for row in conn.execute(query.order_by(E.c.sequence))]


def fields(event: Event) -> tuple:
    return (event.id, event.sequence, event.type, event.subject, event.partition, event.data)


@pytest.fixture
def log_with_a_run(gw):
    """A group, then 7 customers added at once (a run) between single events."""
    vip = gw.groups.create(name="VIP")
    customers = [gw.customers.create(email=f"c{n}@shop.test") for n in range(7)]
    gw.groups.add_customers(vip.id, [c.id for c in customers])
    gw.groups.update(vip.id, description="after the run")
    return vip, customers


def test_a_bulk_add_writes_one_row_read_back_as_one_event_per_customer_in_the_given_order(gw):
    vip = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{n}@shop.test").id for n in range(5)]
    committed = []
    gw.service.commit_listeners.append(lambda events: committed.append(list(events)))

    gw.groups.add_customers(vip.id, ids)

    ((last, span, spread),) = rows_of(gw, ADDED)
    assert span == 5
    assert json.loads(spread) == {"customer_id": ids}
    events = gw.events.list(type=[ADDED], limit=None)
    assert [e.data["customer_id"] for e in events] == ids
    assert [e.sequence for e in events] == list(range(last - 4, last + 1))
    assert len({e.id for e in events}) == 5
    assert [e.id for e in events] == sorted(e.id for e in events)
    stamp = events[0].data["timestamp"]
    assert all(
        e.data == {"group_id": vip.id, "customer_id": c, "timestamp": stamp}
        for e, c in zip(events, ids, strict=True)
    )
    assert {(e.subject, e.partition, e.time, e.source) for e in events} == {
        (vip.id, vip.id, events[0].time, events[0].source)
    }
    # Payload keys come in the order a single add's payload has on this backend.
    gw.groups.add_customers(gw.groups.create(name="one").id, ids[:1])
    single = gw.events.list(type=[ADDED], limit=None)[-1]
    assert {tuple(e.data) for e in events} == {tuple(single.data)}
    # What listeners were handed at commit is what the log reads back.
    assert [fields(e) for e in committed[0]] == [fields(e) for e in events]


def test_a_single_member_change_is_a_plain_row(gw):
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test")
    gw.groups.add_customers(vip.id, [ada.id])
    gw.groups.remove_customers(vip.id, [ada.id])
    assert [(span, spread) for _, span, spread in rows_of(gw, ADDED) + rows_of(gw, REMOVED)] == [
        (1, None),
        (1, None),
    ]


def test_removing_many_and_deleting_a_group_with_members_are_runs_too(gw):
    vip = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{n}@shop.test").id for n in range(6)]
    gw.groups.add_customers(vip.id, ids)
    gw.groups.remove_customers(vip.id, ids[:3])
    gw.groups.delete(vip.id)

    assert [span for _, span, _ in rows_of(gw, REMOVED)] == [3, 3]
    removed = gw.events.list(type=[REMOVED], limit=None)
    assert [(e.data["customer_id"], e.data["reason"]) for e in removed] == [
        (cid, "removed") for cid in ids[:3]
    ] + [(cid, "group_deleted") for cid in ids[3:]]
    # the group's deletion follows its members' removal
    (deleted,) = gw.events.list(type=[ev.GROUP_DELETED])
    assert deleted.sequence == removed[-1].sequence + 1


def test_every_cursor_and_limit_reads_exactly_the_events_after_it(gw, log_with_a_run):
    vip, _ = log_with_a_run
    full = gw.events.list(limit=None)
    assert [e.sequence for e in full] == list(range(1, len(full) + 1))
    ends = range(0, len(full) + 2)
    with gw.engine.connect() as conn:
        for after in ends:
            for limit in (1, 2, 3, 100):
                ascending = event_log.list_events(conn, after=after, limit=limit)
                assert [fields(e) for e in ascending] == [
                    fields(e) for e in full if e.sequence > after
                ][:limit], (after, limit)
                descending = event_log.list_events(conn, after=after, limit=limit, descending=True)
                assert [fields(e) for e in descending] == [
                    fields(e) for e in reversed(full) if e.sequence < after
                ][:limit], (after, limit)
                filtered = event_log.list_events(
                    conn, types=[ADDED], subject=vip.id, after=after, limit=limit, descending=True
                )
                assert [fields(e) for e in filtered] == [
                    fields(e)
                    for e in reversed(full)
                    if e.sequence < after and e.type == ADDED and e.subject == vip.id
                ][:limit], (after, limit)


def test_every_event_is_found_by_its_sequence_alone_or_with_others(gw, log_with_a_run):
    full = gw.events.list(limit=None)
    with gw.engine.connect() as conn:
        for event in full:
            assert fields(event_log.event_by_sequence(conn, event.sequence)) == fields(event)
        assert event_log.event_by_sequence(conn, len(full) + 1) is None
        wanted = [e.sequence for e in full[::2]] + [len(full) + 5]
        found = event_log.events_at(conn, wanted)
    assert {s: fields(e) for s, e in found.items()} == {e.sequence: fields(e) for e in full[::2]}


def test_a_subscriber_reading_two_events_at_a_time_gets_each_event_of_a_run_once_in_order(
    gw, log_with_a_run
):
    seen: list[tuple[int, str]] = []
    gw.relay.batch_size = 2
    gw.subscribe("customer_group.*", lambda e: seen.append((e.sequence, e.id)), name="pairs")
    gw.deliver_pending()
    expected = [(e.sequence, e.id) for e in gw.events.list(type=["customer_group.*"], limit=None)]
    assert seen == expected
    assert sum(1 for e in gw.events.list(type=[ADDED], limit=None)) == 7


def test_a_subscriber_stopped_inside_a_run_resumes_at_the_next_event(gw, log_with_a_run):
    seen: list[int] = []
    gw.relay.batch_size = 4
    subscription = gw.subscribe(
        ["customer_group.*", "customer.*"], lambda e: seen.append(e.sequence), name="resumer"
    )
    cursor = gw.relay.cursor(subscription)
    for _ in range(3):
        cursor.deliver_batch()
    cursor.flush()
    # the group (1), its 7 customers (2-8), then 4 events into the run of 9-15
    assert seen == list(range(1, 13))
    gw.relay.cursors.clear()  # a restart: a new cursor loads the saved checkpoint
    gw.deliver_pending()
    assert seen == [e.sequence for e in gw.events.list(limit=None)]


@pytest.mark.parametrize(
    "values",
    [
        ["plain", 'with "quotes"', "back\\slash", "percent % and _under"],
        ["ünïcødé ✓", "", "line\nbreak", "tab\tthere"],
        [1, None, {"nested": [1, 2]}, 2.5],
    ],
)
def test_a_run_stores_any_json_values_and_reads_them_back_unchanged(gw, values):
    run = ev.PendingRun("test.run", "subject_1", "subject_1", {"a": 1, "b": "x"}, "b", values)
    with UnitOfWork(gw.engine, source="test", context=Context()) as uow:
        uow.emit(run)
        committed = list(uow.commit())
    events = gw.events.list(type=["test.run"], limit=None)
    assert [e.data for e in events] == [{"a": 1, "b": value} for value in values]
    assert [fields(e) for e in committed] == [fields(e) for e in events]


def test_an_empty_run_writes_nothing_and_a_run_of_one_writes_a_plain_event(gw):
    before = gw.events.last_sequence()
    with UnitOfWork(gw.engine, source="test", context=Context()) as uow:
        uow.emit(ev.PendingRun("test.run", "s", "s", {"k": None}, "k", []))
        uow.emit(ev.PendingRun("test.run", "s", "s", {"k": None}, "k", ["only"]))
        uow.commit()
    assert gw.events.last_sequence() == before + 1
    assert rows_of(gw, "test.run") == [(before + 1, 1, None)]
    assert [e.data for e in gw.events.list(type=["test.run"])] == [{"k": "only"}]


def test_the_ids_of_a_run_follow_its_first_id_like_a_block_of_new_ids():
    block = new_ids(EVENT, 300)
    assert [shifted_id(block[0], n) for n in range(300)] == block


def test_a_small_spread_cache_still_reads_every_run_right(gw, monkeypatch):
    monkeypatch.setattr(event_log, "_spreads", event_log._SpreadCache(max_values=4))
    groups = [gw.groups.create(name=f"g{n}") for n in range(3)]
    ids = [gw.customers.create(email=f"c{n}@shop.test").id for n in range(5)]
    for group in groups:
        gw.groups.add_customers(group.id, ids)
    for _ in range(2):
        for group in groups:
            events = gw.events.list(type=[ADDED], subject=group.id, limit=None)
            assert [e.data["customer_id"] for e in events] == ids
    assert len(event_log._spreads._entries) == 1


def test_the_event_table_holds_fewer_rows_than_events(gw, log_with_a_run):
    with gw.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(E)).scalar_one()
        spans = conn.execute(select(func.sum(E.c.span))).scalar_one()
    assert spans == len(gw.events.list(limit=None)) == gw.events.last_sequence()
    assert rows == spans - 6


def test_a_log_written_before_runs_existed_reads_back_unchanged_after_the_upgrade(database_url):
    engine = create_store_engine(database_url)
    try:
        migrate.upgrade(engine, "0006_ui_sessions")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO event (sequence, id, type, source, subject, partition, time, data)"
                    " VALUES (1, 'evt_old', 'customer_group.created', 'groupwire', 'g', 'g',"
                    " '2026-01-02 03:04:05', '{\"id\": \"g\"}')"
                )
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            (event,) = event_log.list_events(conn, limit=None)
        assert (event.id, event.sequence, event.data) == ("evt_old", 1, {"id": "g"})
    finally:
        engine.dispose()


def test_downgrading_below_runs_refuses_while_the_log_holds_one(gw):
    vip = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{n}@shop.test").id for n in range(2)]
    gw.groups.add_customers(vip.id, ids)
    config = migrate.alembic_config()
    with gw.engine.begin() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match="1 event rows hold runs"):
            command.downgrade(config, "0006_ui_sessions")
    assert len(gw.events.list(type=[ADDED])) == 2
