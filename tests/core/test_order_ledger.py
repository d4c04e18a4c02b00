"""The order ledger: an order recorded by its id (created, then updated in place), its event
in the same transaction, nothing written for a no-op or bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from groupwire import InvalidData, NotFound


def order_events(gw):
    return [e for e in gw.events.list(limit=None) if e.type.startswith("order.")]


def test_given_a_new_order_then_it_is_recorded_with_defaults_and_one_event(gw):
    ada = gw.customers.create(email="ada@shop.test")

    record = gw.orders.record("order_1", customer_id=ada.id, currency_code="EUR", total=99.95)

    assert record.created
    order = gw.orders.get("order_1")
    assert (order.currency_code, order.total, order.status) == ("eur", Decimal("99.95"), "pending")
    assert order.placed_at is not None and order.canceled_at is None
    [event] = order_events(gw)
    assert event.type == "order.recorded"
    assert event.subject == ada.id
    assert event.data["total"] == 99.95
    assert event.data["customer_id"] == ada.id


def test_given_a_recorded_order_then_a_cancellation_and_a_refund_update_it(gw):
    ada = gw.customers.create(email="ada@shop.test")
    gw.orders.record("order_1", customer_id=ada.id, currency_code="eur", total=100)

    canceled = gw.orders.record("order_1", status="canceled")
    refunded = gw.orders.record("order_1", total="40.5")
    again = gw.orders.record("order_1", total=40.5, status="canceled")

    assert not canceled.created and set(canceled.changes) == {"status", "canceled_at"}
    assert refunded.changes == {"total": {"old": Decimal(100), "new": Decimal("40.5")}}
    assert again.changes == {}
    events = order_events(gw)
    assert [e.type for e in events] == ["order.recorded", "order.updated", "order.updated"]
    assert events[2].data["changes"] == {"total": {"old": 100, "new": 40.5}}
    assert gw.orders.get("order_1").total == Decimal("40.5")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"currency_code": "eur", "total": 1}, "A new order needs customer_id"),
        ({"customer_id": "X", "currency_code": "euro", "total": 1}, "currency_code must be"),
        ({"customer_id": "X", "currency_code": "eur", "total": -1}, "total must be 0 or more"),
        ({"customer_id": "X", "currency_code": "eur", "total": "1.23456"}, "4 decimal places"),
        ({"customer_id": "X", "currency_code": "eur", "total": 1, "status": "paid"}, "status"),
        ({"customer_id": "X", "currency_code": "eur", "total": 1, "colour": "red"}, "Unknown"),
    ],
)
def test_given_bad_order_values_then_invalid_data_and_nothing_written(gw, fields, message):
    ada = gw.customers.create(email="ada@shop.test")
    fields = {k: (ada.id if v == "X" else v) for k, v in fields.items()}

    with pytest.raises(InvalidData, match=message):
        gw.orders.record("order_1", **fields)

    assert gw.orders.list() == [] and order_events(gw) == []


def test_given_an_unknown_customer_then_not_found_and_nothing_written(gw):
    with pytest.raises(NotFound, match="customer_id"):
        gw.orders.record("order_1", customer_id="cus_nobody", currency_code="eur", total=1)

    assert gw.orders.list() == [] and order_events(gw) == []


def test_a_draft_has_no_placed_time_and_a_given_time_is_kept(gw):
    ada = gw.customers.create(email="ada@shop.test")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    gw.orders.record("d", customer_id=ada.id, currency_code="eur", total=1, status="draft")
    gw.orders.record("p", customer_id=ada.id, currency_code="eur", total=1, placed_at=at)

    assert gw.orders.get("d").placed_at is None
    assert gw.orders.get("p").placed_at == at
