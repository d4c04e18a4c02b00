"""The membership map: its bulk rows keep every value as given, whichever way they reach the
database (COPY text joined at once, COPY row by row, executemany); and a pair of several
Medusa rows is a member from its first live row to its last, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from groupwire import Groupwire
from groupwire.domain import events as ev
from groupwire.medusa import pgoutput
from groupwire.medusa.mapping import MedusaTransaction, RowChange, apply_transaction
from groupwire.medusa.rows import layout
from groupwire.medusa.tables import medusa_membership
from groupwire.store import bulk


def test_bulk_rows_keep_values_that_need_escaping_in_copy(gw: Groupwire) -> None:
    # given rows enough for COPY on PostgreSQL, some holding COPY's special characters
    awkward = ["tab\there", "back\\slash", "new\nline", "cr\rhere", "\\N", "plain"]
    rows = [(f"row{n}", awkward[n % len(awkward)], f"cus_{n}") for n in range(300)]
    # when inserted in bulk
    with gw.service.engine.begin() as conn:
        bulk.insert_rows(conn, medusa_membership, ("id", "customer_group_id", "customer_id"), rows)
    # then each reads back exactly as given
    with gw.service.engine.connect() as conn:
        stored = set(conn.execute(select(medusa_membership)).tuples())
    assert stored == set(rows)


def test_bulk_rows_of_plain_ids_take_the_fast_path_and_read_back(gw: Groupwire) -> None:
    rows = [(f"row{n}", f"cusgroup_{n % 3}", f"cus_{n}") for n in range(300)]
    assert bulk._copy_text(rows) is not None  # the joined COPY text, not a write per row
    with gw.service.engine.begin() as conn:
        bulk.insert_rows(conn, medusa_membership, ("id", "customer_group_id", "customer_id"), rows)
    with gw.service.engine.connect() as conn:
        stored = set(conn.execute(select(medusa_membership)).tuples())
    assert stored == set(rows)


# --- duplicate rows of one pair, on both stores (Medusa keeps no unique constraint) ----------

MEMBERSHIP = pgoutput.Relation(
    1,
    "public",
    "customer_group_customer",
    "d",
    tuple(
        pgoutput.Column(name, oid, -1, name == "id")
        for name, oid in (
            ("id", 25),
            ("customer_id", 25),
            ("customer_group_id", 25),
            ("created_by", 25),
            ("deleted_at", 1184),
        )
    ),
)


def membership_row(
    operation: Any,
    row_id: str,
    group: str | None = None,
    customer: str | None = None,
    *,
    deleted_at: str | None = None,
) -> RowChange:
    """A membership row change as the decoder makes it (a DELETE carries the id only)."""
    values = (row_id, customer, group, None, deleted_at)
    return RowChange("customer_group_customer", operation, layout(MEMBERSHIP), values)


def apply_rows(gw: Groupwire, *changes: RowChange) -> list[tuple[str, str, Any]]:
    """Apply one Medusa transaction of ``changes``; the membership events it recorded."""
    mark = gw.events.last_sequence()
    transaction = MedusaTransaction(1, 1, datetime.now(UTC), list(changes))
    gw.service.apply_external_change(lambda uow: (None, apply_transaction(uow, transaction)))
    return [
        (e.type, e.data["customer_id"], e.data.get("reason"))
        for e in gw.events.list(after=mark, limit=None)
    ]


def test_given_two_rows_of_a_pair_then_it_joins_with_the_first_and_leaves_with_the_last(
    gw: Groupwire,
) -> None:
    group = gw.groups.create("VIP").id
    customer = gw.customers.create("a@shop.example").id
    # two live rows of the pair: one join
    assert apply_rows(
        gw,
        membership_row("insert", "r1", group, customer),
        membership_row("insert", "r2", group, customer),
    ) == [(ev.CUSTOMER_ADDED, customer, None)]
    # one of them deleted (its DELETE carries the id only): still a member, nothing told
    assert apply_rows(gw, membership_row("delete", "r1")) == []
    assert [c.id for c in gw.groups.members(group)] == [customer]
    # the other soft-deleted: it leaves
    soft = membership_row("update", "r2", group, customer, deleted_at="2026-12-08 00:00:00+00")
    assert apply_rows(gw, soft) == [(ev.CUSTOMER_REMOVED, customer, ev.REASON_REMOVED)]
    assert gw.groups.members(group) == []
    # un-deleted: it joins again, and its later DELETE resolves through the map
    assert apply_rows(gw, membership_row("update", "r2", group, customer)) == [
        (ev.CUSTOMER_ADDED, customer, None)
    ]
    assert apply_rows(gw, membership_row("delete", "r2")) == [
        (ev.CUSTOMER_REMOVED, customer, ev.REASON_REMOVED)
    ]
