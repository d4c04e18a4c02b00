"""Capture: every committed change of Medusa's customer tables becomes Groupwire's events.

Medusa is real (the harness), driven through its Admin API or plain SQL in its database; the
Groupwire store is a PostgreSQL schema of its own; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, text

from groupwire import Groupwire
from groupwire.api.app import create_app
from groupwire.domain import events as ev
from groupwire.medusa import capture as capture_module
from groupwire.medusa import slot as slots
from groupwire.medusa.decoding import TransactionDecoder
from groupwire.medusa.plugin import CaptureThread
from groupwire.medusa.stream import ReplicationStream, XLogData
from tests.medusa.capturing import (
    Captured,
    capturing,
    create_group,
    drop_slot,
    new_names,
    ok,
    wait_until_inactive,
    wal_mark,
)
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


def create_customer(medusa: MedusaServer, **body: Any) -> dict[str, Any]:
    body.setdefault("email", f"{uuid.uuid4().hex[:10]}@shop.example")
    return ok(medusa.client.post("/admin/customers", json=body))["customer"]


def added(group_id: str, customer_id: str) -> tuple[str, dict[str, Any]]:
    return (ev.CUSTOMER_ADDED, {"group_id": group_id, "customer_id": customer_id})


def removed(group_id: str, customer_id: str, reason: str) -> tuple[str, dict[str, Any]]:
    return (
        ev.CUSTOMER_REMOVED,
        {"group_id": group_id, "customer_id": customer_id, "reason": reason},
    )


def without_timestamps(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    return [(t, {k: v for k, v in d.items() if k != "timestamp"}) for t, d in events]


# --- groups ------------------------------------------------------------------------------------


def test_given_capture_when_a_group_is_created_through_medusas_api_then_created_is_recorded(
    captured: Captured, medusa: MedusaServer
) -> None:
    mark = captured.mark()

    group = create_group(medusa, metadata={"tier": "gold"})
    captured.sync()

    assert captured.events_since(mark) == [
        (
            ev.GROUP_CREATED,
            {
                "id": group["id"],
                "name": group["name"],
                "description": None,
                "metadata": {"tier": "gold"},
            },
        )
    ]
    [event] = captured.gw.events.list(after=mark)
    [(created_by,)] = captured.sql(
        "SELECT created_by FROM customer_group WHERE id = %s", (group["id"],)
    )
    assert event.actor == created_by
    assert captured.gw.groups.get(group["id"]).name == group["name"]


def test_given_a_captured_group_when_its_name_and_metadata_change_then_updated_and_diff(
    captured: Captured, medusa: MedusaServer
) -> None:
    group = create_group(medusa, metadata={"tier": "gold", "since": 2020})
    captured.sync()
    mark = captured.mark()
    new_name = f"Renamed {uuid.uuid4().hex[:6]}"

    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}",
            json={"name": new_name, "metadata": {"tier": "platinum", "since": "", "vip": True}},
        )
    )
    captured.sync()

    new_metadata = {"tier": "platinum", "vip": True}
    assert captured.events_since(mark) == [
        (
            ev.GROUP_UPDATED,
            {
                "id": group["id"],
                "changes": {
                    "name": {"old": group["name"], "new": new_name},
                    "metadata": {"old": {"tier": "gold", "since": 2020}, "new": new_metadata},
                },
            },
        ),
        (
            ev.GROUP_METADATA_UPDATED,
            {
                "id": group["id"],
                "added": {"vip": True},
                "changed": {"tier": {"old": "gold", "new": "platinum"}},
                "removed": ["since"],
            },
        ),
    ]


def test_given_a_group_with_members_when_medusa_deletes_it_then_each_leaves_then_deleted(
    captured: Captured, medusa: MedusaServer
) -> None:
    group = create_group(medusa)
    ada, bob = create_customer(medusa), create_customer(medusa)
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [ada["id"], bob["id"]]}
        )
    )
    captured.sync()
    mark = captured.mark()

    response = medusa.client.delete(f"/admin/customer-groups/{group['id']}")
    assert response.status_code == 200, response.text
    captured.sync()

    events = without_timestamps(captured.events_since(mark))
    assert sorted(events[:2], key=str) == sorted(
        [
            removed(group["id"], ada["id"], ev.REASON_GROUP_DELETED),
            removed(group["id"], bob["id"], ev.REASON_GROUP_DELETED),
        ],
        key=str,
    )
    assert events[2:] == [
        (ev.GROUP_DELETED, {"id": group["id"], "name": group["name"], "member_count": 2})
    ]
    assert captured.gw.groups.list(ids=[group["id"]]).count == 0


# --- memberships -------------------------------------------------------------------------------


@pytest.fixture(params=["whole", "in pieces"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each transaction applied whole at its Commit, or (CHUNK_ROWS = 1) while it streams in,
    a row change at a time: the events must be the same."""
    if request.param == "in pieces":
        monkeypatch.setattr(capture_module, "CHUNK_ROWS", 1)
    return str(request.param)


def test_given_capture_when_medusa_batch_adds_and_removes_customers_then_one_event_each(
    captured: Captured, medusa: MedusaServer, chunking: str
) -> None:
    group = create_group(medusa)
    customers = [create_customer(medusa)["id"] for _ in range(3)]
    captured.sync()
    mark = captured.mark()

    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": customers}
        )
    )
    captured.sync()
    after_add = captured.mark()
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"remove": customers[:2]}
        )
    )
    captured.sync()

    adds = without_timestamps(captured.events_since(mark)[:3])
    assert sorted(adds, key=str) == sorted([added(group["id"], c) for c in customers], key=str)
    removals = without_timestamps(captured.events_since(after_add))
    assert sorted(removals, key=str) == sorted(
        [removed(group["id"], c, ev.REASON_REMOVED) for c in customers[:2]], key=str
    )
    assert [c.id for c in captured.gw.groups.members(group["id"])] == [customers[2]]


def test_given_capture_when_a_customers_groups_change_through_its_own_route_then_recorded(
    captured: Captured, medusa: MedusaServer
) -> None:
    vip, trial = create_group(medusa), create_group(medusa)
    customer = create_customer(medusa)
    captured.sync()
    mark = captured.mark()

    ok(
        medusa.client.post(
            f"/admin/customers/{customer['id']}/customer-groups",
            json={"add": [vip["id"], trial["id"]]},
        )
    )
    captured.sync()
    joined = captured.mark()
    ok(
        medusa.client.post(
            f"/admin/customers/{customer['id']}/customer-groups", json={"remove": [trial["id"]]}
        )
    )
    captured.sync()

    assert sorted(without_timestamps(captured.events_since(mark)[:2]), key=str) == sorted(
        [added(vip["id"], customer["id"]), added(trial["id"], customer["id"])], key=str
    )
    assert without_timestamps(captured.events_since(joined)) == [
        removed(trial["id"], customer["id"], ev.REASON_REMOVED)
    ]
    assert [g.id for g in captured.gw.customers.groups(customer["id"])] == [vip["id"]]


# --- customers ---------------------------------------------------------------------------------


def test_given_a_customer_in_groups_when_medusa_deletes_it_then_it_leaves_each_then_deleted(
    captured: Captured, medusa: MedusaServer, chunking: str
) -> None:
    group = create_group(medusa)
    customer = create_customer(medusa, first_name="Ada")
    ok(
        medusa.client.post(
            f"/admin/customers/{customer['id']}/addresses",
            json={"address_1": "1 Main St", "city": "Paris", "country_code": "fr"},
        )
    )
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        )
    )
    captured.sync()
    mark = captured.mark()
    [(address_id,)] = captured.sql(
        "SELECT id FROM customer_address WHERE customer_id = %s", (customer["id"],)
    )

    response = medusa.client.delete(f"/admin/customers/{customer['id']}")
    assert response.status_code == 200, response.text
    captured.sync()

    assert without_timestamps(captured.events_since(mark)) == [
        removed(group["id"], customer["id"], ev.REASON_CUSTOMER_DELETED),
        (
            ev.ADDRESS_DELETED,
            {"id": address_id, "customer_id": customer["id"], "reason": "customer_deleted"},
        ),
        (
            ev.CUSTOMER_DELETED,
            {"id": customer["id"], "email": customer["email"], "group_count": 1},
        ),
    ]


def test_given_capture_when_a_customer_is_created_and_updated_then_created_and_updated(
    captured: Captured, medusa: MedusaServer
) -> None:
    mark = captured.mark()

    customer = create_customer(medusa, first_name="Ada", last_name="Lovelace")
    ok(medusa.client.post(f"/admin/customers/{customer['id']}", json={"first_name": "Augusta"}))
    captured.sync()

    assert captured.events_since(mark) == [
        (
            ev.CUSTOMER_CREATED,
            {
                "id": customer["id"],
                "email": customer["email"],
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company_name": None,
                "phone": None,
                "metadata": None,
            },
        ),
        (
            ev.CUSTOMER_UPDATED,
            {"id": customer["id"], "changes": {"first_name": {"old": "Ada", "new": "Augusta"}}},
        ),
    ]


# --- whoever makes the change ------------------------------------------------------------------


def test_given_capture_when_plain_sql_adds_a_member_in_medusas_database_then_it_is_recorded(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa), create_customer(medusa)
    captured.sync()
    mark = captured.mark()

    captured.sql(
        "INSERT INTO customer_group_customer (id, customer_id, customer_group_id, created_by)"
        " VALUES (%s, %s, %s, 'sql-console')",
        (f"cusgc_{uuid.uuid4().hex}", customer["id"], group["id"]),
    )
    captured.sync()

    assert without_timestamps(captured.events_since(mark)) == [added(group["id"], customer["id"])]
    [event] = captured.gw.events.list(after=mark)
    assert event.actor == "sql-console"


def test_given_capture_when_a_sql_transaction_is_rolled_back_then_nothing_is_recorded(
    captured: Captured, medusa: MedusaServer
) -> None:
    group = create_group(medusa)
    captured.sync()
    mark = captured.mark()

    with psycopg.connect(slots._libpq_url(medusa.database_url)) as conn:
        conn.execute("UPDATE customer_group SET name = 'Never' WHERE id = %s", (group["id"],))
        conn.execute(
            "INSERT INTO customer_group (id, name) VALUES (%s, 'Ghost')",
            (f"cusgroup_{uuid.uuid4().hex}",),
        )
        conn.rollback()
    later = create_group(medusa)  # a committed change after it, to show capture moved on
    captured.sync()

    assert [t for t, _ in captured.events_since(mark)] == [ev.GROUP_CREATED]
    assert captured.events_since(mark)[0][1]["id"] == later["id"]
    assert captured.gw.groups.get(group["id"]).name == group["name"]


def test_given_a_store_committing_lazily_when_capture_moves_its_position_then_that_commit_syncs(
    medusa: MedusaServer, store_url: str
) -> None:
    # The slot never sends a confirmed change again: Groupwire's commit of it must be on
    # disk, even on a store that commits lazily (here a session with synchronous_commit=off).
    settings: dict[str, list[str]] = {"position moved": [], "group inserted": []}

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        what = None
        if statement.startswith("UPDATE medusa_stream SET lsn"):
            what = "position moved"
        elif statement.startswith("INSERT INTO customer_group "):
            what = "group inserted"
        if what is not None:
            setting = cursor.connection.execute("SHOW synchronous_commit").fetchone()[0]
            settings[what].append(setting)

    with capturing(medusa, store_url + "%20-csynchronous_commit%3Doff") as captured:
        event.listen(captured.gw.service.engine, "before_cursor_execute", note)
        create_group(medusa)
        captured.sync()
        captured.gw.groups.create(f"Local {uuid.uuid4().hex[:8]}")

    # the captured group's copy commits synced; a group made through Groupwire's own API
    # afterwards commits as the store does
    assert settings == {"position moved": ["on"], "group inserted": ["on", "off"]}


# --- restart safety ----------------------------------------------------------------------------


def test_given_transactions_applied_but_not_confirmed_when_capture_restarts_then_none_doubles(
    captured: Captured, medusa: MedusaServer
) -> None:
    group = create_group(medusa)
    customer = create_customer(medusa)
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        )
    )
    options = captured.options
    before = captured.mark()
    # Read the slot and apply what it holds without ever confirming it: a crash right
    # after Groupwire's commit, before the standby status update.
    mark = wal_mark(medusa.database_url)
    stream = ReplicationStream(medusa.database_url, options.slot, options.publication, 0)
    decoder, received = TransactionDecoder(), 0
    try:
        while received < mark or decoder.in_transaction:
            message = stream.read(10)
            assert message is not None, "the stream went quiet"
            received = max(received, message.wal_end)
            if isinstance(message, XLogData):
                transaction = decoder.feed(message.data)
                if transaction is not None:
                    assert captured.capture._apply(transaction)
    finally:
        stream.close()
    applied = captured.mark()
    unconfirmed = captured.capture.status()
    assert applied > before
    assert unconfirmed.confirmed_lsn is not None and unconfirmed.position is not None
    assert unconfirmed.confirmed_lsn < unconfirmed.position
    wait_until_inactive(medusa.database_url, options.slot)

    captured.sync()  # the slot hands the same transactions out again

    assert captured.mark() == applied
    adds = [e for e in captured.gw.events.list(type=ev.CUSTOMER_ADDED, limit=None)]
    assert [(e.data["group_id"], e.data["customer_id"]) for e in adds] == [
        (group["id"], customer["id"])
    ]
    state = captured.capture.status()
    assert state.confirmed_lsn is not None and state.position is not None
    assert state.confirmed_lsn >= state.position


def test_given_a_transaction_applied_in_pieces_when_the_stream_breaks_then_nothing_is_committed(
    captured: Captured, medusa: MedusaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_module, "CHUNK_ROWS", 2)
    group = create_group(medusa)
    customers = [create_customer(medusa)["id"] for _ in range(6)]
    captured.sync()
    mark = captured.mark()
    position = captured.capture.position()
    capture = captured.capture

    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": customers}
        )
    )
    # One message at a time, until the first pieces of the batch are written, uncommitted.
    deadline = time.monotonic() + 30
    while (partial := capture._partial) is None or partial.done < 4:
        assert time.monotonic() < deadline, "the batch was never applied in pieces"
        assert capture.pump(1.0, limit=1) == 0
    assert partial.change is not None and capture.decoder.in_transaction
    assert not partial.fallback
    # ... and the stream breaks before its Commit: the run loop closes the capture after
    # any failure (what libpq had already received of the transaction is gone with it)
    capture.close()

    assert captured.mark() == mark
    assert captured.gw.groups.members(group["id"]) == []
    assert capture.position() == position
    wait_until_inactive(medusa.database_url, captured.options.slot)

    captured.sync()  # the slot sends the whole transaction again

    assert sorted(without_timestamps(captured.events_since(mark)), key=str) == sorted(
        [added(group["id"], c) for c in customers], key=str
    )
    assert sorted(c.id for c in captured.gw.groups.members(group["id"])) == sorted(customers)


def test_given_medusa_busy_with_other_tables_only_when_idle_then_the_slot_still_advances(
    captured: Captured, medusa: MedusaServer
) -> None:
    captured.sync()
    position = captured.capture.position()
    captured.sql("CREATE TABLE IF NOT EXISTS gw_test_noise (n int)")
    captured.sql("INSERT INTO gw_test_noise SELECT generate_series(1, 20000)")
    written = wal_mark(medusa.database_url)
    before = captured.capture.status().confirmed_lsn
    assert before is not None and before < written

    deadline = time.monotonic() + 30
    confirmed = before
    while confirmed < written and time.monotonic() < deadline:
        assert captured.capture.pump(0.1) == 0
        confirmed = captured.capture.status().confirmed_lsn or 0

    assert confirmed >= written
    assert captured.capture.position() == position  # nothing of ours: nothing applied


# --- the initial state -------------------------------------------------------------------------


def test_given_a_store_with_members_when_capture_starts_with_initial_events_then_they_are_told(
    medusa: MedusaServer, store_url: str
) -> None:
    group, customer = create_group(medusa), create_customer(medusa)
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        )
    )

    with capturing(medusa, store_url, initial="events") as captured:
        events = captured.events_since(0)

        assert (ev.GROUP_CREATED, group["id"]) in [(t, d.get("id")) for t, d in events]
        assert added(group["id"], customer["id"]) in without_timestamps(events)
        assert [c.id for c in captured.gw.groups.members(group["id"])] == [customer["id"]]


def test_given_a_store_with_members_when_capture_starts_silently_then_copied_without_events(
    medusa: MedusaServer, store_url: str
) -> None:
    group, customer = create_group(medusa), create_customer(medusa)
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        )
    )

    with capturing(medusa, store_url) as captured:
        assert captured.events_since(0) == []
        assert [c.id for c in captured.gw.groups.members(group["id"])] == [customer["id"]]
        mark = captured.mark()
        ok(
            medusa.client.post(
                f"/admin/customer-groups/{group['id']}/customers",
                json={"remove": [customer["id"]]},
            )
        )
        captured.sync()
        assert without_timestamps(captured.events_since(mark)) == [
            removed(group["id"], customer["id"], ev.REASON_REMOVED)
        ]


def test_given_a_postgresql_store_when_capture_imports_medusas_state_then_its_planner_knows_it(
    medusa: MedusaServer, store_url: str
) -> None:
    """Capture's first transactions are planned from the statistics of the imported tables:
    gathered by install, not a minute later by autovacuum."""
    group, customer = create_group(medusa), create_customer(medusa)
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        )
    )

    with capturing(medusa, store_url) as captured, captured.gw.service.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.relname, s.last_analyze IS NOT NULL, c.reltuples"
                " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.schemaname = current_schema()"
            )
        ).all()
    statistics = {name: (analysed, reltuples) for name, analysed, reltuples in rows}
    imported = [
        *("customer_group", "customer", "customer_group_customer", "customer_address"),
        "medusa_membership",
    ]

    assert {name: statistics[name][0] for name in imported} == dict.fromkeys(imported, True)
    assert statistics["customer_group_customer"][1] >= 1
    assert statistics["medusa_membership"][1] >= 1


# --- a capture process killed in the middle of a large batch -------------------------------


def start_capture_process(
    medusa: MedusaServer, store_url: str, slot: str, publication: str, log: Any
) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "groupwire.cli", "medusa", "capture"),
        *("--medusa-url", medusa.database_url, "--db", store_url),
        *("--slot", slot, "--publication", publication),
    ]
    env = {**os.environ, "GROUPWIRE_LOAD_ENTRY_POINTS": "false"}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def blocked_on_position(store: Engine, holder: int) -> tuple[int, set[str]] | None:
    """The capture's Groupwire transaction waiting for the ``medusa_stream`` row held by
    ``holder``: its backend pid and the tables it has written rows into (uncommitted)."""
    with store.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
                " AND query LIKE 'UPDATE medusa_stream%'"
            ),
            {"holder": holder},
        ).first()
        if row is None:
            return None
        written = conn.execute(
            text(
                "SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r'"
            ),
            {"pid": row[0]},
        ).scalars()
        return int(row[0]), set(written)


@pytest.mark.slow
def test_given_capture_killed_during_large_batch_adds_when_restarted_then_each_event_once(
    medusa: MedusaServer, store_url: str, tmp_path: Any
) -> None:
    slot, publication = new_names()
    medusa_sql = slots._libpq_url(medusa.database_url)
    count = 10_000
    customer_ids = [f"cus_kill{uuid.uuid4().hex}" for _ in range(count)]
    with psycopg.connect(medusa_sql) as conn, conn.cursor() as cursor:  # one transaction
        cursor.executemany(
            "INSERT INTO customer (id, email) VALUES (%s, %s)",
            [(cid, f"{cid}@bulk.example") for cid in customer_ids],
        )
    group_id = create_group(medusa)["id"]
    path = f"/admin/customer-groups/{group_id}/customers"
    log = (tmp_path / "capture.log").open("ab")
    gw = Groupwire.open(store_url, load_entry_points=False, plugins=[])
    store = create_engine(store_url)
    process = start_capture_process(medusa, store_url, slot, publication, log)
    try:
        wait_for(
            lambda: b"Capturing" in (tmp_path / "capture.log").read_bytes(), 60, "capture start"
        )
        ok(medusa.client.post(path, json={"add": customer_ids[:1]}))
        wait_for(lambda: gw.events.last_sequence() > 0, 60, "the first member")
        start = gw.events.last_sequence()

        # Hold the capture's position row: its next Groupwire transaction writes the copy of
        # the batch, then waits for the row, uncommitted.
        with store.connect() as holder:
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
            holder.execute(
                text("SELECT lsn FROM medusa_stream WHERE slot = :slot FOR UPDATE"),
                {"slot": slot},
            )
            ok(medusa.client.post(path, json={"add": customer_ids[1:]}))  # one Medusa commit
            deadline = time.monotonic() + 120
            while (blocked := blocked_on_position(store, holder_pid)) is None:
                assert time.monotonic() < deadline, "the capture never blocked on the row"
                time.sleep(0.05)
            _pid, written = blocked
            # the copy of the 10,000 memberships and the map are written, uncommitted (the
            # events are written by the commit itself, which never comes)
            assert {"customer_group_customer", "medusa_membership"} <= written
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            holder.rollback()
        killed_at = gw.events.last_sequence() - start

        process = start_capture_process(medusa, store_url, slot, publication, log)
        expected = count - 1
        wait_for(lambda: gw.events.last_sequence() - start >= expected, 180, "every event")
        time.sleep(1.0)  # anything extra would come right after
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

        events = gw.events.list(after=start, limit=None)
        pairs = [(e.data["group_id"], e.data["customer_id"]) for e in events]
        assert killed_at == 0  # the kill came before the commit: nothing of the batch
        assert {e.type for e in events} == {ev.CUSTOMER_ADDED}
        assert len(pairs) == len(set(pairs)) == expected
        members: set[tuple[str, str]] = set()
        for event in gw.events.list(type="customer_group.customer_*", limit=None):
            pair = (event.data["group_id"], event.data["customer_id"])
            if event.type == ev.CUSTOMER_ADDED:
                members.add(pair)
            else:
                members.discard(pair)
        with psycopg.connect(medusa_sql) as conn:
            live = conn.execute(
                "SELECT m.customer_group_id, m.customer_id FROM customer_group_customer m"
                " JOIN customer_group g ON g.id = m.customer_group_id"
                " JOIN customer c ON c.id = m.customer_id"
                " WHERE m.deleted_at IS NULL AND g.deleted_at IS NULL AND c.deleted_at IS NULL"
                " AND m.customer_group_id = %s",
                (group_id,),
            ).fetchall()
        assert len(live) == count
        assert {p for p in members if p[0] == group_id} == {tuple(r) for r in live}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()
        store.dispose()
        gw.close()
        drop_slot(medusa.database_url, slot, publication)


# --- capture inside serve / worker ----------------------------------------------------------


def test_given_the_medusa_plugin_with_capture_on_when_started_then_changes_become_events(
    medusa: MedusaServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slot, publication = new_names()
    for name, value in (
        ("URL", medusa.database_url),
        ("SLOT", slot),
        ("PUBLICATION", publication),
        ("CAPTURE", "1"),
    ):
        monkeypatch.setenv(f"GROUPWIRE_MEDUSA_{name}", value)
    gw = Groupwire.open(store_url, load_entry_points=False, plugins=["groupwire.medusa.plugin"])
    try:
        [capture] = [w for w in gw.workers if isinstance(w, CaptureThread)]
        gw.start()
        wait_for(lambda: gw.health_checks["medusa_capture"]() == "ok", 60, "capture running")

        group = create_group(medusa)

        wait_for(
            lambda: [e.data["id"] for e in gw.events.list(type=ev.GROUP_CREATED)] == [group["id"]],
            30,
            "the group's event",
        )
    finally:
        gw.close()
        drop_slot(medusa.database_url, slot, publication)
    assert not capture.thread.is_alive()


@pytest.mark.slow
def test_given_serve_with_medusa_capture_then_medusas_changes_reach_its_store(
    medusa: MedusaServer, store_url: str, tmp_path: Any
) -> None:
    slot, publication = new_names()
    command = [
        *(sys.executable, "-m", "groupwire.cli", "--db", store_url, "serve"),
        *("--port", "0", "--medusa-capture", medusa.database_url),
    ]
    env = {
        **os.environ,
        "GROUPWIRE_LOAD_ENTRY_POINTS": "false",
        "GROUPWIRE_MEDUSA_SLOT": slot,
        "GROUPWIRE_MEDUSA_PUBLICATION": publication,
    }
    gw = Groupwire.open(store_url, load_entry_points=False, plugins=[])
    with (tmp_path / "serve.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        # Installed: the copy and the position committed. A slot is active already while it
        # is being created, before its consistent point (which waits for every transaction
        # running in the cluster): a group created then belongs to the copy, told by no event.
        wait_for(lambda: positioned(gw, slot), 60, "the capture installed")
        wait_for(lambda: slot_active(medusa, slot), 60, "the capture reading its slot")
        group = create_group(medusa)
        wait_for(
            lambda: [e.data["id"] for e in gw.events.list(type=ev.GROUP_CREATED)] == [group["id"]],
            30,
            "the group's event",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        gw.close()
        drop_slot(medusa.database_url, slot, publication)


def positioned(gw: Groupwire, slot: str) -> bool:
    """Whether capture's position for ``slot`` is in ``gw``'s store (its install committed)."""
    query = text("SELECT 1 FROM medusa_stream WHERE slot = :slot")
    with gw.engine.connect() as conn:
        return conn.execute(query, {"slot": slot}).first() is not None


def slot_active(medusa: MedusaServer, slot: str) -> bool:
    with slots.connect(medusa.database_url) as conn:
        state = slots.slot_state(conn, slot)
    return state is not None and state.active


# --- monitoring --------------------------------------------------------------------------------


def test_given_the_medusa_plugin_then_metrics_show_slot_lag_and_health_fails_without_slot(
    captured: Captured, medusa: MedusaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROUPWIRE_MEDUSA_URL", medusa.database_url)
    monkeypatch.setenv("GROUPWIRE_MEDUSA_SLOT", captured.options.slot)
    gw = Groupwire.open(
        captured.gw.settings.database_url,
        load_entry_points=False,
        plugins=["groupwire.medusa.plugin"],
    )
    try:
        with TestClient(create_app(gw)) as client:
            metrics = client.get("/metrics").text
            healthy = client.get("/health")
            drop_slot(medusa.database_url, captured.options.slot, captured.options.publication)
            broken = client.get("/health")
    finally:
        gw.close()

    slot = captured.options.slot
    assert f'groupwire_medusa_slot_exists{{slot="{slot}"}} 1.0' in metrics
    assert f'groupwire_medusa_slot_lag_bytes{{slot="{slot}"}}' in metrics
    assert healthy.status_code == 200 and healthy.json()["checks"]["medusa_slot"] == "ok"
    assert broken.status_code == 503
    assert broken.json()["checks"]["medusa_slot"] == "error: SlotMissing"


def test_the_capture_benchmark_runs_to_its_report(medusa: MedusaServer, tmp_path: Any) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            *(sys.executable, str(root / "benchmarks" / "medusa_capture.py")),
            *("--customers", "50", "--singles", "3"),
            *("--base-url", medusa.base_url, "--api-key", medusa.api_key),
            *("--medusa-db", medusa.database_url),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "captured changes/s" in done.stdout
    assert "customers inserted" in done.stdout and "addresses soft-deleted" in done.stdout
