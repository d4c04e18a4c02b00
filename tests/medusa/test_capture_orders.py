"""Capture of Medusa's orders into Groupwire's order ledger (the facts smart groups read).

Medusa is real (the harness) and driven through its Admin API only; the Groupwire store is a
PostgreSQL schema of its own; nothing is mocked. Each step checks the ledger's order and that
exactly one ``order.*`` event was recorded for each real change, none for a no-op.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from groupwire.domain.errors import NotFound
from groupwire.medusa import MedusaCapture
from groupwire.medusa import slot as slots
from tests.medusa.capturing import Captured, capturing, ok
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


# --- Medusa's Admin API --------------------------------------------------------------------


def create_region(medusa: MedusaServer) -> str:
    body = {"name": f"Europe {uuid.uuid4().hex[:6]}", "currency_code": "eur", "countries": []}
    return str(ok(medusa.client.post("/admin/regions", json=body))["region"]["id"])


def create_customer(medusa: MedusaServer) -> str:
    body = {"email": f"{uuid.uuid4().hex[:10]}@shop.example"}
    return str(ok(medusa.client.post("/admin/customers", json=body))["customer"]["id"])


def create_draft(medusa: MedusaServer, region: str, customer: str, unit_price: int) -> str:
    """A draft order of ``customer`` (Medusa takes the customer of the email given, creating
    one if none has it: the customer's own email keeps the order theirs)."""
    email = ok(medusa.client.get(f"/admin/customers/{customer}"))["customer"]["email"]
    body = {
        "region_id": region,
        "customer_id": customer,
        "email": email,
        "items": [{"title": "Gift", "quantity": 1, "unit_price": unit_price}],
    }
    return str(ok(medusa.client.post("/admin/draft-orders", json=body))["draft_order"]["id"])


def convert(medusa: MedusaServer, draft: str) -> None:
    ok(medusa.client.post(f"/admin/draft-orders/{draft}/convert-to-order"))


def cancel(medusa: MedusaServer, order: str) -> None:
    ok(medusa.client.post(f"/admin/orders/{order}/cancel"))


def pay(medusa: MedusaServer, order: str, amount: int) -> str:
    """Mark the order paid through a payment collection; returns the payment's id."""
    body = {"order_id": order, "amount": amount}
    collection = ok(medusa.client.post("/admin/payment-collections", json=body))
    collection_id = collection["payment_collection"]["id"]
    paid = ok(
        medusa.client.post(
            f"/admin/payment-collections/{collection_id}/mark-as-paid", json={"order_id": order}
        )
    )
    payments = paid["payment_collection"].get("payments") or []
    if not payments:
        found = ok(
            medusa.client.get(
                f"/admin/orders/{order}", params={"fields": "*payment_collections.payments"}
            )
        )
        payments = [
            payment
            for pc in found["order"]["payment_collections"]
            if pc["id"] == collection_id
            for payment in pc["payments"]
        ]
    return str(payments[0]["id"])


def refund(medusa: MedusaServer, payment: str, amount: int) -> None:
    body = {"amount": amount, "note": "partial"}
    ok(medusa.client.post(f"/admin/payments/{payment}/refund", json=body))


# --- what Groupwire recorded ----------------------------------------------------------------


def order_events(captured: Captured, mark: int) -> list[tuple[str, dict[str, Any]]]:
    return [(t, d) for t, d in captured.events_since(mark) if t.startswith("order.")]


def ledger(captured: Captured, order_id: str) -> tuple[str, str, Decimal, str, bool]:
    order = captured.gw.orders.get(order_id)
    return (
        order.customer_id,
        order.currency_code,
        order.total,
        order.status,
        order.canceled_at is not None,
    )


def not_recorded(captured: Captured, order_id: str) -> bool:
    try:
        captured.gw.orders.get(order_id)
    except NotFound:
        return True
    return False


# --- tests ---------------------------------------------------------------------------------


def test_given_capture_when_a_draft_is_converted_then_canceled_then_the_ledger_follows_once_each(
    captured: Captured, medusa: MedusaServer
) -> None:
    region, customer = create_region(medusa), create_customer(medusa)
    captured.sync()
    mark = captured.mark()

    draft = create_draft(medusa, region, customer, 1200)
    captured.sync()

    assert not_recorded(captured, draft)  # a draft order is no order yet
    assert order_events(captured, mark) == []

    convert(medusa, draft)
    captured.sync()

    assert ledger(captured, draft) == (customer, "eur", Decimal(1200), "pending", False)
    assert captured.gw.orders.get(draft).placed_at is not None
    [(kind, data)] = order_events(captured, mark)
    assert kind == "order.recorded"
    assert (data["id"], data["customer_id"], data["total"]) == (draft, customer, 1200)
    mark = captured.mark()

    cancel(medusa, draft)
    captured.sync()

    # four Medusa transactions, one change of the fact: the total stays (unpaid), the status
    # and the cancellation time change
    assert ledger(captured, draft) == (customer, "eur", Decimal(1200), "canceled", True)
    [(kind, data)] = order_events(captured, mark)
    assert kind == "order.updated"
    assert set(data["changes"]) == {"status", "canceled_at"}
    assert data["changes"]["status"] == {"old": "pending", "new": "canceled"}


def test_given_capture_when_an_order_is_paid_refunded_in_part_and_canceled_then_its_total_follows(
    captured: Captured, medusa: MedusaServer
) -> None:
    region, customer = create_region(medusa), create_customer(medusa)
    draft = create_draft(medusa, region, customer, 1200)
    convert(medusa, draft)
    captured.sync()
    assert ledger(captured, draft) == (customer, "eur", Decimal(1200), "pending", False)
    mark = captured.mark()

    payment = pay(medusa, draft, 1200)
    captured.sync()

    assert order_events(captured, mark) == []  # paid: the fact does not change

    refund(medusa, payment, 200)
    captured.sync()

    assert ledger(captured, draft) == (customer, "eur", Decimal(1000), "pending", False)
    assert order_events(captured, mark) == [
        (
            "order.updated",
            {
                "id": draft,
                "customer_id": customer,
                "changes": {"total": {"old": 1200, "new": 1000}},
            },
        )
    ]
    mark = captured.mark()

    cancel(medusa, draft)  # a paid order is refunded as it is canceled
    captured.sync()

    assert ledger(captured, draft) == (customer, "eur", Decimal(0), "canceled", True)
    # Medusa commits the refund (total 0) and the status apart: two changes of the fact
    events = order_events(captured, mark)
    assert [(kind, set(data["changes"])) for kind, data in events] == [
        ("order.updated", {"total"}),
        ("order.updated", {"status", "canceled_at"}),
    ]
    assert events[0][1]["changes"]["total"] == {"old": 1000, "new": 0}


def test_given_orders_and_drafts_in_medusa_when_capture_is_installed_then_the_orders_are_imported(
    medusa: MedusaServer, store_url: str
) -> None:
    region, customer = create_region(medusa), create_customer(medusa)
    placed = create_draft(medusa, region, customer, 300)
    convert(medusa, placed)
    canceled = create_draft(medusa, region, customer, 50)
    convert(medusa, canceled)
    cancel(medusa, canceled)
    draft = create_draft(medusa, region, customer, 70)

    with capturing(medusa, store_url, initial="events") as captured:
        assert ledger(captured, placed) == (customer, "eur", Decimal(300), "pending", False)
        assert ledger(captured, canceled) == (customer, "eur", Decimal(50), "canceled", True)
        assert not_recorded(captured, draft)
        recorded = [d["id"] for t, d in order_events(captured, 0) if t == "order.recorded"]
        assert placed in recorded and canceled in recorded and draft not in recorded

        # and the stream goes on from the copy: the draft becomes an order
        mark = captured.mark()
        convert(medusa, draft)
        captured.sync()
        assert ledger(captured, draft) == (customer, "eur", Decimal(70), "pending", False)
        assert [t for t, _ in order_events(captured, mark)] == ["order.recorded"]


def test_given_a_capture_whose_publication_lacks_the_order_tables_when_it_starts_then_it_adds_them(
    medusa: MedusaServer, store_url: str
) -> None:
    region, customer = create_region(medusa), create_customer(medusa)
    with capturing(medusa, store_url) as captured:
        # a capture installed before it read orders: its publication has the four tables
        publication = captured.options.publication
        with slots.connect(medusa.database_url) as conn:
            conn.execute(f'ALTER PUBLICATION {publication} DROP TABLE "order", order_summary')
        placed = create_draft(medusa, region, customer, 400)
        convert(medusa, placed)
        captured.sync()
        assert not_recorded(captured, placed)
        captured.capture.close()

        restarted = MedusaCapture(captured.gw.service, captured.options)
        captured.capture = restarted
        assert restarted.install() == "resumed"

        assert set(published(medusa, publication)) == set(slots.TABLES)
        assert ledger(captured, placed) == (customer, "eur", Decimal(400), "pending", False)
        mark = captured.mark()
        captured.sync()  # what the stream sends again of the copied orders changes nothing
        assert order_events(captured, mark) == []

        cancel(medusa, placed)
        captured.sync()
        assert ledger(captured, placed) == (customer, "eur", Decimal(400), "canceled", True)
        assert [t for t, _ in order_events(captured, mark)] == ["order.updated"]


def published(medusa: MedusaServer, publication: str) -> list[str]:
    with slots.connect(medusa.database_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
        ).fetchall()
    return [row[0] for row in rows]
