"""Capture of large transactions of customer and address rows: the same events, payloads,
order and after-hooks as row by row, one each, and a copy equal to Medusa's tables.

Medusa is real (the harness); the transaction is written in plain SQL in its database, one
statement per row, so that the order of its row changes is known; the Groupwire store is a
PostgreSQL schema of its own, or a SQLite file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select

from groupwire import hookimpl
from groupwire.domain import events as ev
from groupwire.domain.addresses import ADDRESS_FIELDS
from groupwire.medusa import capture as capture_module
from groupwire.medusa import slot as slots
from groupwire.store import tables
from groupwire.store.address_tables import customer_address
from tests.medusa.capturing import Captured, capturing, create_group, ok
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa

NEW = 60  # customers inserted by the large transaction
WITH_ADDRESS = 10  # the first of them get an address in it too


@pytest.fixture(params=["whole", "in pieces"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Applied whole at its Commit, or (CHUNK_ROWS = 1) while it streams in."""
    if request.param == "in pieces":
        monkeypatch.setattr(capture_module, "CHUNK_ROWS", 1)
    return str(request.param)


class HookRecorder:
    """The after-hooks capture runs, in order, with what identifies their arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def after_create_customer(self, customer: Any) -> None:
        self.calls.append(("create_customer", customer.id, customer.version))

    @hookimpl
    def after_update_customer(self, customer: Any, changes: Any) -> None:
        self.calls.append(("update_customer", customer.id, customer.version, changes))

    @hookimpl
    def after_delete_customer(self, customer: Any, removed_group_ids: Any) -> None:
        self.calls.append(("delete_customer", customer.id, customer.version, removed_group_ids))

    @hookimpl
    def after_remove_customer_from_group(self, group: Any, customer_ids: Any, reason: Any) -> None:
        self.calls.append(("remove_from_group", group.id, customer_ids, reason))

    @hookimpl
    def after_create_customer_address(self, customer: Any, address: Any) -> None:
        self.calls.append(("create_address", customer.id, address.id, address.city))

    @hookimpl
    def after_update_customer_address(self, customer: Any, address: Any, changes: Any) -> None:
        self.calls.append(("update_address", customer.id, customer.version, address.id, changes))

    @hookimpl
    def after_delete_customer_address(self, customer: Any, address: Any, reason: Any) -> None:
        gone = address.deleted_at is not None
        self.calls.append(("delete_address", customer.id, address.id, reason, gone))


@pytest.fixture(params=["postgresql", "sqlite"])
def captured(
    request: pytest.FixtureRequest, medusa: MedusaServer, tmp_path: Path
) -> Iterator[Captured]:
    if request.param == "postgresql":
        url = request.getfixturevalue("store_url")
    else:
        url = f"sqlite:///{tmp_path / 'groupwire.db'}"
    with capturing(medusa, url) as value:
        yield value


@pytest.fixture
def recorder(captured: Captured) -> Iterator[HookRecorder]:
    recording = HookRecorder()
    captured.gw.service.plugins.register(recording)
    yield recording
    captured.gw.service.plugins.unregister(recording)


def medusa_connection(medusa: MedusaServer) -> psycopg.Connection[Any]:
    return psycopg.connect(slots._libpq_url(medusa.database_url))


def customer_created(cid: str, email: str, first: str | None, last: str | None, meta: Any) -> Any:
    return (
        ev.CUSTOMER_CREATED,
        {
            "id": cid,
            "email": email,
            "first_name": first,
            "last_name": last,
            "company_name": None,
            "phone": None,
            "metadata": meta,
        },
    )


def address_created(aid: str, cid: str, **values: Any) -> Any:
    data: dict[str, Any] = {"id": aid, "customer_id": cid}
    defaults: dict[str, Any] = {"is_default_shipping": False, "is_default_billing": False}
    data.update({name: values.get(name, defaults.get(name)) for name in ADDRESS_FIELDS})
    return (ev.ADDRESS_CREATED, data)


def address_updated(aid: str, cid: str, **changes: tuple[Any, Any]) -> Any:
    return (
        ev.ADDRESS_UPDATED,
        {
            "id": aid,
            "customer_id": cid,
            "changes": {k: {"old": old, "new": new} for k, (old, new) in changes.items()},
        },
    )


def address_deleted(aid: str, cid: str, reason: str) -> Any:
    return (ev.ADDRESS_DELETED, {"id": aid, "customer_id": cid, "reason": reason})


def without_timestamps(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    return [(t, {k: v for k, v in d.items() if k != "timestamp"}) for t, d in events]


def test_given_a_large_transaction_of_customer_and_address_rows_then_each_event_once_in_order(
    captured: Captured, medusa: MedusaServer, recorder: HookRecorder, chunking: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    group = create_group(medusa)
    e = [f"cus_{tag}_e{i}" for i in range(6)]  # customers there before
    n = [f"cus_{tag}_n{i:03d}" for i in range(NEW)]  # customers the transaction inserts
    a0, a0b, a2 = f"cuaddr_{tag}_a0", f"cuaddr_{tag}_a0b", f"cuaddr_{tag}_a2"
    new_addresses = [f"cuaddr_{tag}_n{i:03d}" for i in range(WITH_ADDRESS)]
    e3_address, late = f"cuaddr_{tag}_e3", f"cuaddr_{tag}_late"
    with medusa_connection(medusa) as conn:
        for i, cid in enumerate(e):
            conn.execute(
                "INSERT INTO customer (id, email, first_name) VALUES (%s, %s, %s)",
                (cid, f"{cid}@before.example", f"E{i}"),
            )
        conn.execute(
            "INSERT INTO customer_address (id, customer_id, city, is_default_shipping,"
            " created_at) VALUES (%s, %s, 'Rome', true, now() - interval '2 minutes'),"
            " (%s, %s, 'Oslo', false, now() - interval '1 minute'), (%s, %s, 'Lima', false,"
            " now())",
            (a0, e[0], a0b, e[0], a2, e[2]),
        )
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [e[0], e[1]]}
        )
    )
    with medusa_connection(medusa) as conn:
        conn.execute("UPDATE customer SET deleted_at = now() WHERE id = %s", (e[5],))
    captured.sync()
    mark = captured.mark()
    recorder.calls.clear()

    with medusa_connection(medusa) as conn:  # ONE transaction, one statement per row
        for i, cid in enumerate(n):
            conn.execute(
                "INSERT INTO customer (id, email, first_name, last_name, metadata, created_by)"
                " VALUES (%s, %s, %s, %s, %s, 'user_bulk')",
                (cid, f"{cid}@new.example", f"F{i}", f"L{i}", json.dumps({"i": i})),
            )
        conn.execute(
            "UPDATE customer SET first_name = 'Updated', metadata = '{\"k\": 1}',"
            " updated_at = now() WHERE id = %s",
            (e[3],),
        )
        conn.execute("UPDATE customer SET has_account = true WHERE id = %s", (e[4],))
        conn.execute("UPDATE customer SET updated_at = now() WHERE id = %s", (e[4],))
        conn.execute("UPDATE customer SET last_name = 'Changed' WHERE id = %s", (n[1],))
        for aid, cid in zip(new_addresses, n, strict=False):
            conn.execute(
                "INSERT INTO customer_address (id, customer_id, city, country_code,"
                " is_default_shipping) VALUES (%s, %s, 'Paris', 'fr', true)",
                (aid, cid),
            )
        conn.execute(
            "INSERT INTO customer_address (id, customer_id, city) VALUES (%s, %s, 'Bern')",
            (e3_address, e[3]),
        )
        conn.execute("UPDATE customer_address SET city = 'Lyon' WHERE id = %s", (a2,))
        conn.execute("UPDATE customer_address SET city = 'Nice' WHERE id = %s", (new_addresses[0],))
        conn.execute("UPDATE customer_address SET is_default_shipping = false WHERE id = %s", (a0,))
        conn.execute("UPDATE customer_address SET is_default_shipping = true WHERE id = %s", (a0b,))
        conn.execute("UPDATE customer_address SET deleted_at = now() WHERE id = %s", (a2,))
        conn.execute("DELETE FROM customer_address WHERE id = %s", (new_addresses[2],))
        # Medusa's delete of a customer: the customer, then its addresses
        for cid in (e[0], n[3]):
            conn.execute("UPDATE customer SET deleted_at = now() WHERE id = %s", (cid,))
            conn.execute(
                "UPDATE customer_address SET deleted_at = now() WHERE customer_id = %s", (cid,)
            )
        conn.execute(
            "UPDATE customer SET deleted_at = NULL, first_name = 'Back' WHERE id = %s", (e[5],)
        )
        conn.execute(  # an address of a customer deleted earlier in the transaction
            "INSERT INTO customer_address (id, customer_id, city) VALUES (%s, %s, 'Void')",
            (late, e[0]),
        )
    captured.sync()

    expected = [
        *(
            customer_created(cid, f"{cid}@new.example", f"F{i}", f"L{i}", {"i": i})
            for i, cid in enumerate(n)
        ),
        (
            ev.CUSTOMER_UPDATED,
            {
                "id": e[3],
                "changes": {
                    "first_name": {"old": "E3", "new": "Updated"},
                    "metadata": {"old": None, "new": {"k": 1}},
                },
            },
        ),
        (
            ev.CUSTOMER_UPDATED,
            {"id": n[1], "changes": {"last_name": {"old": "L1", "new": "Changed"}}},
        ),
        *(
            address_created(aid, cid, city="Paris", country_code="fr", is_default_shipping=True)
            for aid, cid in zip(new_addresses, n, strict=False)
        ),
        address_created(e3_address, e[3], city="Bern"),
        address_updated(a2, e[2], city=("Lima", "Lyon")),
        address_updated(new_addresses[0], n[0], city=("Paris", "Nice")),
        address_updated(a0, e[0], is_default_shipping=(True, False)),
        address_updated(a0b, e[0], is_default_shipping=(False, True)),
        address_deleted(a2, e[2], ev.REASON_ADDRESS_DELETED),
        address_deleted(new_addresses[2], n[2], ev.REASON_ADDRESS_DELETED),
        (
            ev.CUSTOMER_REMOVED,
            {"group_id": group["id"], "customer_id": e[0], "reason": ev.REASON_CUSTOMER_DELETED},
        ),
        address_deleted(a0, e[0], ev.REASON_CUSTOMER_DELETED),
        address_deleted(a0b, e[0], ev.REASON_CUSTOMER_DELETED),
        (ev.CUSTOMER_DELETED, {"id": e[0], "email": f"{e[0]}@before.example", "group_count": 1}),
        address_deleted(new_addresses[3], n[3], ev.REASON_CUSTOMER_DELETED),
        (ev.CUSTOMER_DELETED, {"id": n[3], "email": f"{n[3]}@new.example", "group_count": 0}),
        customer_created(e[5], f"{e[5]}@before.example", "Back", None, None),
    ]
    assert without_timestamps(captured.events_since(mark)) == expected
    assert {event.actor for event in captured.gw.events.list(after=mark, limit=None)} == {
        "user_bulk"
    }

    first_changes = {"first_name": {"old": "E3", "new": "Updated"}}
    assert recorder.calls == [
        *(("create_customer", cid, 1) for cid in n),
        (
            "update_customer",
            e[3],
            2,
            {**first_changes, "metadata": {"old": None, "new": {"k": 1}}},
        ),
        ("update_customer", n[1], 2, {"last_name": {"old": "L1", "new": "Changed"}}),
        *(
            ("create_address", cid, aid, "Paris")
            for aid, cid in zip(new_addresses, n, strict=False)
        ),
        ("create_address", e[3], e3_address, "Bern"),
        ("update_address", e[2], 1, a2, {"city": {"old": "Lima", "new": "Lyon"}}),
        ("update_address", n[0], 1, new_addresses[0], {"city": {"old": "Paris", "new": "Nice"}}),
        ("update_address", e[0], 1, a0, {"is_default_shipping": {"old": True, "new": False}}),
        ("update_address", e[0], 1, a0b, {"is_default_shipping": {"old": False, "new": True}}),
        ("delete_address", e[2], a2, ev.REASON_ADDRESS_DELETED, True),
        ("delete_address", n[2], new_addresses[2], ev.REASON_ADDRESS_DELETED, True),
        ("remove_from_group", group["id"], [e[0]], ev.REASON_CUSTOMER_DELETED),
        ("delete_address", e[0], a0, ev.REASON_CUSTOMER_DELETED, True),
        ("delete_address", e[0], a0b, ev.REASON_CUSTOMER_DELETED, True),
        ("delete_customer", e[0], 2, [group["id"]]),
        ("delete_address", n[3], new_addresses[3], ev.REASON_CUSTOMER_DELETED, True),
        ("delete_customer", n[3], 2, []),
        ("create_customer", e[5], 3),
    ]

    ids = [*e, *n]
    assert copy_of_customers(captured, ids) == medusa_customers(captured, ids)
    assert copy_of_addresses(captured, ids) == medusa_addresses(captured, ids)
    assert [c.id for c in captured.gw.groups.members(group["id"])] == [e[1]]


CUSTOMER_COLUMNS = ("id", "email", "first_name", "last_name", "company_name", "phone")
ADDRESS_COLUMNS = ("id", "customer_id", *ADDRESS_FIELDS[:-1])  # all but metadata


def medusa_customers(captured: Captured, ids: list[str]) -> list[tuple[Any, ...]]:
    return captured.sql(
        f"SELECT {', '.join(CUSTOMER_COLUMNS)}, has_account, metadata FROM customer"
        " WHERE deleted_at IS NULL AND id = ANY(%s) ORDER BY id",
        (ids,),
    )


def copy_of_customers(captured: Captured, ids: list[str]) -> list[tuple[Any, ...]]:
    C = tables.customer
    columns = [C.c[name] for name in (*CUSTOMER_COLUMNS, "has_account", "metadata")]
    query = select(*columns).where(C.c.deleted_at.is_(None), C.c.id.in_(ids)).order_by(C.c.id)
    with captured.gw.service.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def medusa_addresses(captured: Captured, ids: list[str]) -> list[tuple[Any, ...]]:
    columns = ", ".join(f"a.{name}" for name in ADDRESS_COLUMNS)
    return captured.sql(
        f"SELECT {columns} FROM customer_address a JOIN customer c ON c.id = a.customer_id"
        " WHERE a.deleted_at IS NULL AND c.deleted_at IS NULL AND c.id = ANY(%s) ORDER BY a.id",
        (ids,),
    )


def copy_of_addresses(captured: Captured, ids: list[str]) -> list[tuple[Any, ...]]:
    A = customer_address
    query = (
        select(*(A.c[name] for name in ADDRESS_COLUMNS))
        .where(A.c.deleted_at.is_(None), A.c.customer_id.in_(ids))
        .order_by(A.c.id)
    )
    with captured.gw.service.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def test_given_a_large_transaction_of_customer_rows_then_it_is_applied_without_a_statement_a_row(
    captured: Captured, medusa: MedusaServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [f"cus_{tag}_{i:04d}" for i in range(300)]
    with medusa_connection(medusa) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO customer (id, email) VALUES (%s, %s)",
            [(cid, f"{cid}@bulk.example") for cid in ids],
        )
        cursor.executemany(
            "UPDATE customer SET first_name = %s WHERE id = %s",
            [(f"F{i}", cid) for i, cid in enumerate(ids)],
        )
        cursor.executemany(
            "INSERT INTO customer_address (id, customer_id, city) VALUES (%s, %s, 'Oslo')",
            [(f"cuaddr_{cid}", cid) for cid in ids],
        )
    statements: list[str] = []
    engine = captured.gw.service.engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    mark = captured.mark()
    try:
        captured.sync()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert len(captured.events_since(mark)) == 3 * len(ids)
    # a few statements per table and the bookkeeping, not one or more per row
    assert len(statements) < 40, statements[:50]
