"""``/health`` and ``/metrics``: what operators and Prometheus see."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from groupwire.api.app import create_app
from groupwire.domain.models import Event

from .conftest import wait_until


def metric(body: str, name: str, **labels: str) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    match = re.search(r"^" + pattern + r" ([0-9.e+-]+)$", body, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def test_given_database_and_redis_up_when_health_is_asked_then_both_checks_are_ok(open_gw):
    client = TestClient(create_app(open_gw()))

    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"db": "ok", "bus": "ok"}}


def test_given_redis_unreachable_when_health_is_asked_then_it_answers_503_naming_the_bus(
    open_gw,
):
    client = TestClient(create_app(open_gw(bus_url="redis://127.0.0.1:1/0")))

    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["db"] == "ok"
    assert body["checks"]["bus"].startswith("error: ")


def test_given_the_in_process_bus_when_health_is_asked_then_the_bus_is_ok(gw):
    response = TestClient(create_app(gw)).get("/health")

    assert response.status_code == 200
    assert response.json()["checks"] == {"db": "ok", "bus": "ok"}


def test_given_deliveries_retries_and_a_dead_letter_when_metrics_are_scraped_then_they_are_counted(
    open_gw,
):
    gw = open_gw(delivery_max_attempts=2)
    seen: list[str] = []

    def picky(event: Event) -> None:
        if event.type == "customer_group.created" and event.data["name"] == "poison":
            raise ValueError("no")
        seen.append(event.id)

    gw.subscribe("customer_group.*", picky, name="metrics-picky")
    client = TestClient(create_app(gw))
    before = client.get("/metrics").text
    delivered_before = _maybe(before, "groupwire_deliveries_total", "metrics-picky", "delivered")

    group = gw.groups.create("fine")
    gw.groups.create("poison")
    customer = gw.customers.create("a@example.com")
    gw.groups.add_customers(group.id, [customer.id])
    lagging = client.get("/metrics").text
    assert metric(lagging, "groupwire_outbox_lag_events") == gw.events.last_sequence()

    gw.start()
    worker = gw.worker(subscribers=["metrics-picky"], progress_interval=0.05).start()
    try:
        wait_until(lambda: len(gw.dead_letters.list()) == 1, 30, "the poison is dead-lettered")
        wait_until(lambda: len(seen) == 2, 30, "the other group events were delivered")
        wait_until(
            lambda: (
                metric(
                    client.get("/metrics").text,
                    "groupwire_subscriber_lag_events",
                    subscriber="metrics-picky",
                )
                == 0
            ),
            30,
            "the worker confirmed its progress",
        )
    finally:
        worker.stop()

    body = client.get("/metrics").text
    assert metric(body, "groupwire_outbox_lag_events") == 0
    assert metric(body, "groupwire_events_last_sequence") == gw.events.last_sequence()
    assert metric(body, "groupwire_dead_letters", subscriber="metrics-picky") == 1
    delivered = metric(
        body, "groupwire_deliveries_total", outcome="delivered", subscriber="metrics-picky"
    )
    assert delivered - delivered_before == 2
    assert (
        metric(
            body,
            "groupwire_cluster_deliveries_total",
            outcome="delivered",
            subscriber="metrics-picky",
        )
        == 2
    )
    assert (
        metric(
            body, "groupwire_cluster_deliveries_total", outcome="retry", subscriber="metrics-picky"
        )
        == 1
    )
    assert (
        metric(
            body,
            "groupwire_cluster_deliveries_total",
            outcome="dead_letter",
            subscriber="metrics-picky",
        )
        == 1
    )
    assert metric(body, "groupwire_handler_seconds_count", subscriber="metrics-picky") >= 2
    assert metric(body, "groupwire_bus_published_events_total") >= gw.events.last_sequence()


def _maybe(body: str, name: str, subscriber: str, outcome: str) -> float:
    try:
        return metric(body, name, outcome=outcome, subscriber=subscriber)
    except AssertionError:
        return 0.0
