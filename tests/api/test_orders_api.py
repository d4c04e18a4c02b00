"""``POST /admin/orders``: any shop reports its orders; Medusa-shaped errors, nothing written."""

from __future__ import annotations

from tests.api.conftest import all_events, assert_error


def test_given_an_order_posted_twice_then_created_then_updated(client, gw):
    ada = gw.customers.create(email="ada@shop.test")
    body = {"id": "ord_1", "customer_id": ada.id, "currency_code": "eur", "total": 1200}

    created = client.post("/admin/orders", json=body)
    canceled = client.post("/admin/orders", json={"id": "ord_1", "status": "canceled"})

    assert created.status_code == 200, created.text
    assert created.json()["order"]["total"] == 1200
    assert created.json()["order"]["status"] == "pending"
    assert canceled.json()["order"]["status"] == "canceled"
    assert canceled.json()["order"]["canceled_at"] is not None
    assert client.get("/admin/orders/ord_1").json()["order"]["status"] == "canceled"
    types = [e.type for e in all_events(gw) if e.type.startswith("order.")]
    assert types == ["order.recorded", "order.updated"]


def test_given_bad_orders_then_400_invalid_data_and_nothing_written(client, gw):
    ada = gw.customers.create(email="ada@shop.test")
    before = len(all_events(gw))

    missing = client.post("/admin/orders", json={"id": "o", "customer_id": ada.id})
    bad_total = client.post(
        "/admin/orders",
        json={"id": "o", "customer_id": ada.id, "currency_code": "eur", "total": "lots"},
    )
    unknown_field = client.post("/admin/orders", json={"id": "o", "colour": "red"})
    unknown_customer = client.post(
        "/admin/orders",
        json={"id": "o", "customer_id": "cus_x", "currency_code": "eur", "total": 1},
    )

    assert "currency_code, total" in assert_error(missing, 400, "invalid_data")["message"]
    assert_error(bad_total, 400, "invalid_data")
    assert_error(unknown_field, 400, "invalid_data")
    assert_error(unknown_customer, 404, "not_found")
    assert_error(client.get("/admin/orders/o"), 404, "not_found")
    assert len(all_events(gw)) == before
