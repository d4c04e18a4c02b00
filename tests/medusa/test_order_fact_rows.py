"""Order facts from Medusa's ``order`` and ``order_summary`` row changes, in the orders the
stream may bring them: a summary before or after its order's new version, within one
transaction or across two, a row sent again after a newer one, a draft, a key-only DELETE.

The row changes are pgoutput rows as the server sends them (text values, default replica
identity), applied through the capture's own path (``apply_transaction`` inside
``Service.apply_external_change``) into a real store; only Medusa itself is left out (the
end-to-end tests with a real Medusa are in test_capture_orders.py).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from groupwire import Groupwire
from groupwire.domain.errors import NotFound
from groupwire.medusa.mapping import MedusaTransaction, RowChange, apply_transaction
from groupwire.medusa.pgoutput import Column, Relation
from groupwire.medusa.rows import layout

TEXT, INT4, BOOL, TIMESTAMPTZ, JSONB = 25, 23, 16, 1184, 3802
ORDER = Relation(
    1,
    "public",
    "order",
    "d",
    tuple(
        Column(name, oid, -1, name == "id")
        for name, oid in [
            ("id", TEXT),
            ("customer_id", TEXT),
            ("currency_code", TEXT),
            ("status", TEXT),
            ("is_draft_order", BOOL),
            ("version", INT4),
            ("canceled_at", TIMESTAMPTZ),
            ("created_at", TIMESTAMPTZ),
            ("updated_at", TIMESTAMPTZ),
            ("deleted_at", TIMESTAMPTZ),
        ]
    ),
)
SUMMARY = Relation(
    2,
    "public",
    "order_summary",
    "d",
    tuple(
        Column(name, oid, -1, name == "id")
        for name, oid in [
            ("id", TEXT),
            ("order_id", TEXT),
            ("version", INT4),
            ("totals", JSONB),
            ("created_at", TIMESTAMPTZ),
            ("updated_at", TIMESTAMPTZ),
            ("deleted_at", TIMESTAMPTZ),
        ]
    ),
)
CUSTOMER = Relation(
    3,
    "public",
    "customer",
    "d",
    tuple(
        Column(name, TEXT, -1, name == "id")
        for name in ("id", "email", "first_name", "last_name", "company_name", "phone")
    ),
)
START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
_xids = itertools.count(1000)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat(sep=" ")


def order_row(
    version: int,
    minute: int,
    *,
    status: str = "pending",
    draft: bool = False,
    canceled: int | None = None,
) -> RowChange:
    values = (
        "order_1",
        "cus_1",
        "eur",
        status,
        "t" if draft else "f",
        str(version),
        None if canceled is None else at(canceled),
        at(0),
        at(minute),
        None,
    )
    return RowChange("order", "update", layout(ORDER), values)


def summary_row(version: int, total: Any, minute: int) -> RowChange:
    totals = {
        "current_order_total": total,
        "raw_current_order_total": {"value": str(total), "precision": 20},
        "paid_total": 0,
    }
    values = (f"ordsum_{version}", "order_1", str(version), json.dumps(totals), at(0), at(minute))
    return RowChange("order_summary", "update", layout(SUMMARY), (*values, None))


def deleted_summary(version: int) -> RowChange:
    return RowChange("order_summary", "delete", layout(SUMMARY), (f"ordsum_{version}",))


def new_customer(gw: Groupwire) -> None:
    """Customer cus_1, as capture copies it from Medusa's INSERT."""
    values = ("cus_1", "ada@shop.example", None, None, None, None)
    commit(gw, RowChange("customer", "insert", layout(CUSTOMER), values))


def commit(gw: Groupwire, *changes: RowChange) -> list[tuple[str, dict[str, Any]]]:
    """Apply one Medusa transaction; the ``order.*`` events it recorded."""
    mark = gw.events.last_sequence()
    transaction = MedusaTransaction(next(_xids), 0, START, list(changes))
    gw.service.apply_external_change(lambda uow: (None, apply_transaction(uow, transaction)))
    return [(e.type, e.data) for e in gw.events.list(after=mark, limit=None)]


def fact(gw: Groupwire) -> tuple[Decimal, str]:
    order = gw.orders.get("order_1")
    return order.total, order.status


@pytest.fixture
def placed(gw: Groupwire) -> Groupwire:
    """Customer cus_1 and their order order_1 of 1,200 EUR, version 1, recorded."""
    new_customer(gw)
    [(kind, data)] = commit(gw, order_row(1, 1), summary_row(1, 1200, 1))
    assert (kind, data["total"], data["status"]) == ("order.recorded", 1200, "pending")
    return gw


def test_given_a_draft_order_then_it_is_no_fact_until_converted(gw: Groupwire) -> None:
    new_customer(gw)

    assert commit(gw, summary_row(1, 50, 0), order_row(1, 0, status="draft", draft=True)) == []
    with pytest.raises(NotFound):
        gw.orders.get("order_1")

    [(kind, _)] = commit(gw, order_row(1, 5))  # convert-to-order: the order row only
    assert kind == "order.recorded"
    assert fact(gw) == (Decimal(50), "pending")


def test_given_a_new_summary_version_before_its_order_version_then_the_total_changes_with_the_order(
    placed: Groupwire,
) -> None:
    # the summary of version 2 commits first: the order is still at version 1
    assert commit(placed, summary_row(2, 1000, 2)) == []
    assert fact(placed) == (Decimal(1200), "pending")

    [(kind, data)] = commit(placed, order_row(2, 3))
    assert (kind, data["changes"]) == ("order.updated", {"total": {"old": 1200, "new": 1000}})


def test_given_an_order_version_before_its_summary_then_the_total_waits_for_the_summary(
    placed: Groupwire,
) -> None:
    assert commit(placed, order_row(2, 2)) == []  # no summary of version 2 yet: 1,200 stays
    assert fact(placed) == (Decimal(1200), "pending")

    [(kind, data)] = commit(placed, summary_row(2, "999.5", 3))
    assert (kind, data["changes"]) == ("order.updated", {"total": {"old": 1200, "new": 999.5}})


def test_given_order_and_summary_in_one_transaction_in_either_order_then_one_event(
    placed: Groupwire,
) -> None:
    assert len(commit(placed, summary_row(2, 1000, 2), order_row(2, 2))) == 1
    assert len(commit(placed, order_row(3, 3), summary_row(3, 800, 3))) == 1
    assert fact(placed) == (Decimal(800), "pending")


def test_given_a_cancellation_in_medusas_four_steps_then_one_event_for_the_status(
    placed: Groupwire,
) -> None:
    # version 2 with its summary (unpaid: the same total), then the status
    assert commit(placed, order_row(2, 2), summary_row(2, 1200, 2)) == []
    [(kind, data)] = commit(placed, order_row(2, 3, status="canceled", canceled=3))
    assert kind == "order.updated" and set(data["changes"]) == {"status", "canceled_at"}
    assert fact(placed) == (Decimal(1200), "canceled")


def test_given_rows_sent_again_after_newer_ones_then_nothing_changes(placed: Groupwire) -> None:
    commit(placed, order_row(2, 2), summary_row(2, 1000, 2), summary_row(2, 900, 4))
    assert fact(placed) == (Decimal(900), "pending")

    # the stream sends older rows again (a backfill's copy was newer): all ignored
    assert commit(placed, order_row(1, 1), summary_row(2, 1000, 2), order_row(2, 1)) == []
    assert fact(placed) == (Decimal(900), "pending")


def test_given_the_current_summary_deleted_then_the_total_is_the_one_below(
    placed: Groupwire,
) -> None:
    commit(placed, order_row(2, 2), summary_row(2, 1000, 2))

    [(_, data)] = commit(placed, deleted_summary(2))  # a DELETE carries the key only
    assert data["changes"] == {"total": {"old": 1000, "new": 1200}}


def test_given_an_order_hard_deleted_then_its_fact_is_canceled(placed: Groupwire) -> None:
    deleted = RowChange("order", "delete", layout(ORDER), ("order_1",))  # the key only

    [(kind, data)] = commit(placed, deleted)

    assert kind == "order.updated" and set(data["changes"]) == {"status", "canceled_at"}
    assert fact(placed) == (Decimal(1200), "canceled")


def test_given_an_order_of_a_customer_the_copy_lacks_then_it_is_skipped_and_capture_goes_on(
    gw: Groupwire,
) -> None:
    # no customer cus_1 in the copy: the transaction still applies (the copy of the order is
    # kept), nothing is recorded for it
    assert commit(gw, order_row(1, 1), summary_row(1, 10, 1)) == []
    with pytest.raises(NotFound):
        gw.orders.get("order_1")

    new_customer(gw)
    [(kind, _)] = commit(gw, order_row(2, 2), summary_row(2, 20, 2))  # its next change
    assert kind == "order.recorded"
    assert fact(gw) == (Decimal(20), "pending")
