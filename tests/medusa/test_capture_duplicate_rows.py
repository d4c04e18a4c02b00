"""Capture of Medusa's duplicate membership rows: Groupwire's copy holds the distinct live pairs.

Medusa 2.21.2 keeps no unique constraint on (group, customer): adding a member again through
its Admin API answers 200 and writes a second row (``{"add": [c, c]}`` writes two), its reads
show the customer once, and its removal deletes every such row. Capture must tell a join when
the first live row of a pair appears and a leave when the last one goes, and nothing between.
Medusa is real (the harness); deleting one row of two is done by SQL on its database, since its
API cannot.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from groupwire.domain import events as ev
from groupwire.medusa import capture as capture_module
from groupwire.medusa import slot as slots
from groupwire.store import repository as repo
from tests.medusa.capturing import Captured, capturing, create_group, ok
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


def create_customer(medusa: MedusaServer) -> str:
    body = {"email": f"{uuid.uuid4().hex[:10]}@shop.example"}
    return str(ok(medusa.client.post("/admin/customers", json=body))["customer"]["id"])


def add(medusa: MedusaServer, group_id: str, customer_ids: list[str]) -> None:
    path = f"/admin/customer-groups/{group_id}/customers"
    ok(medusa.client.post(path, json={"add": customer_ids}))


def membership_events(captured: Captured, mark: int) -> list[tuple[str, str, str, Any]]:
    return [
        (type_, data["group_id"], data["customer_id"], data.get("reason"))
        for type_, data in captured.events_since(mark)
        if type_ in (ev.CUSTOMER_ADDED, ev.CUSTOMER_REMOVED)
    ]


def rows_of(captured: Captured, group_id: str, customer_id: str) -> list[str]:
    """Medusa's live membership rows of the pair, oldest first."""
    found = captured.sql(
        "SELECT id FROM customer_group_customer WHERE customer_group_id = %s"
        " AND customer_id = %s AND deleted_at IS NULL ORDER BY created_at, id",
        (group_id, customer_id),
    )
    return [row[0] for row in found]


def medusa_pairs(captured: Captured) -> set[tuple[str, str]]:
    """Medusa's distinct live pairs: what Groupwire's copy must hold."""
    found = captured.sql(
        "SELECT DISTINCT m.customer_group_id, m.customer_id FROM customer_group_customer m"
        " JOIN customer_group g ON g.id = m.customer_group_id AND g.deleted_at IS NULL"
        " JOIN customer c ON c.id = m.customer_id AND c.deleted_at IS NULL"
        " WHERE m.deleted_at IS NULL"
    )
    return {(row[0], row[1]) for row in found}


def groupwire_pairs(captured: Captured, group_ids: set[str]) -> set[tuple[str, str]]:
    with captured.gw.service.engine.connect() as conn:
        return {pair for pair in repo.all_memberships(conn) if pair[0] in group_ids}


def test_given_a_member_when_medusas_api_adds_it_again_then_a_second_row_and_no_event(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer])
    captured.sync()
    mark = captured.mark()

    add(medusa, group, [customer])
    captured.sync()

    assert len(rows_of(captured, group, customer)) == 2  # Medusa wrote a second row
    assert membership_events(captured, mark) == []
    assert groupwire_pairs(captured, {group}) == {(group, customer)}


def test_given_capture_when_medusas_api_adds_a_customer_twice_in_one_batch_then_one_event(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    captured.sync()
    mark = captured.mark()

    add(medusa, group, [customer, customer])
    captured.sync()

    assert len(rows_of(captured, group, customer)) == 2
    assert membership_events(captured, mark) == [(ev.CUSTOMER_ADDED, group, customer, None)]


@pytest.fixture(params=["whole", "in pieces"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each transaction applied whole at its Commit, or a row change at a time."""
    if request.param == "in pieces":
        monkeypatch.setattr(capture_module, "CHUNK_ROWS", 1)
    return str(request.param)


def test_given_two_rows_of_a_member_when_sql_deletes_one_then_still_a_member_and_no_event(
    captured: Captured, medusa: MedusaServer, chunking: str
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer])
    add(medusa, group, [customer])
    first, second = rows_of(captured, group, customer)
    captured.sync()
    mark = captured.mark()

    captured.sql("DELETE FROM customer_group_customer WHERE id = %s", (first,))
    captured.sync()

    assert membership_events(captured, mark) == []
    assert rows_of(captured, group, customer) == [second]
    assert groupwire_pairs(captured, {group}) == {(group, customer)}

    captured.sql("DELETE FROM customer_group_customer WHERE id = %s", (second,))
    captured.sync()

    assert membership_events(captured, mark) == [
        (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_REMOVED)
    ]
    assert groupwire_pairs(captured, {group}) == set()


def test_given_two_rows_of_a_member_when_medusas_api_removes_it_then_one_event(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer, customer])
    captured.sync()
    mark = captured.mark()

    path = f"/admin/customer-groups/{group}/customers"
    ok(medusa.client.post(path, json={"remove": [customer]}))
    captured.sync()

    assert rows_of(captured, group, customer) == []
    assert membership_events(captured, mark) == [
        (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_REMOVED)
    ]


def test_given_duplicate_rows_when_one_sql_transaction_deletes_one_of_each_then_only_lone_leave(
    captured: Captured, medusa: MedusaServer, chunking: str
) -> None:
    # given a group where three customers have two rows each and one customer has one
    group = create_group(medusa)["id"]
    doubled = [create_customer(medusa) for _ in range(3)]
    lone = create_customer(medusa)
    add(medusa, group, [*doubled, lone])
    add(medusa, group, doubled)
    first_rows = [rows_of(captured, group, c)[0] for c in doubled]
    captured.sync()
    mark = captured.mark()

    # when one transaction deletes the first row of each doubled pair and the lone one's row
    gone = [*first_rows, *rows_of(captured, group, lone)]
    captured.sql("DELETE FROM customer_group_customer WHERE id = ANY(%s)", (gone,))
    captured.sync()

    # then only the lone customer leaves; the copy equals Medusa's distinct live pairs
    assert membership_events(captured, mark) == [
        (ev.CUSTOMER_REMOVED, group, lone, ev.REASON_REMOVED)
    ]
    assert groupwire_pairs(captured, {group}) == {(group, c) for c in doubled}
    assert groupwire_pairs(captured, {group}) == {
        p for p in medusa_pairs(captured) if p[0] == group
    }


def test_given_two_rows_of_a_member_when_sql_soft_deletes_them_then_it_leaves_with_the_last(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer, customer])
    first, second = rows_of(captured, group, customer)
    captured.sync()
    mark = captured.mark()
    soft_delete = "UPDATE customer_group_customer SET deleted_at = now() WHERE id = %s"

    captured.sql(soft_delete, (first,))
    captured.sync()
    assert membership_events(captured, mark) == []

    captured.sql(soft_delete, (second,))
    captured.sync()
    assert membership_events(captured, mark) == [
        (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_REMOVED)
    ]

    # un-deleting a row makes it a member again, and that row is the one to delete later
    captured.sql("UPDATE customer_group_customer SET deleted_at = NULL WHERE id = %s", (first,))
    captured.sync()
    captured.sql("DELETE FROM customer_group_customer WHERE id = %s", (first,))
    captured.sync()
    assert membership_events(captured, mark)[1:] == [
        (ev.CUSTOMER_ADDED, group, customer, None),
        (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_REMOVED),
    ]
    assert groupwire_pairs(captured, {group}) == set()


def test_given_duplicate_and_soft_deleted_rows_before_capture_when_rows_go_then_last_one_counts(
    medusa: MedusaServer, store_url: str
) -> None:
    # given, before capture starts: a member with two live rows and a soft-deleted third
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer, customer, customer])
    with psycopg.connect(slots._libpq_url(medusa.database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id FROM customer_group_customer WHERE customer_group_id = %s"
            " ORDER BY created_at, id",
            (group,),
        ).fetchall()
        first, second, third = (row[0] for row in rows)
        conn.execute(
            "UPDATE customer_group_customer SET deleted_at = now() WHERE id = %s", (third,)
        )

    with capturing(medusa, store_url) as captured:
        assert groupwire_pairs(captured, {group}) == {(group, customer)}
        mark = captured.mark()
        # when the soft-deleted row and one live row are deleted: still a member
        captured.sql("DELETE FROM customer_group_customer WHERE id = ANY(%s)", ([third, first],))
        captured.sync()
        assert membership_events(captured, mark) == []
        assert groupwire_pairs(captured, {group}) == {(group, customer)}
        # when the last live row goes: it leaves
        captured.sql("DELETE FROM customer_group_customer WHERE id = %s", (second,))
        captured.sync()
        assert membership_events(captured, mark) == [
            (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_REMOVED)
        ]


def test_given_a_member_with_two_rows_when_medusa_deletes_the_group_then_it_leaves_once(
    captured: Captured, medusa: MedusaServer
) -> None:
    group, customer = create_group(medusa)["id"], create_customer(medusa)
    add(medusa, group, [customer, customer])
    captured.sync()
    mark = captured.mark()

    ok(medusa.client.delete(f"/admin/customer-groups/{group}"))
    captured.sync()

    assert membership_events(captured, mark) == [
        (ev.CUSTOMER_REMOVED, group, customer, ev.REASON_GROUP_DELETED)
    ]
