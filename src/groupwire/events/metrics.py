"""Prometheus metrics of event delivery, shared by the relay, the workers and ``/metrics``.

Counters live in the process that does the work (each worker serves its own, see
``groupwire worker --metrics-port``); ``/metrics`` of an API server adds gauges read from the
database and Redis at scrape time (outbox lag, subscriber lag, dead letters, cluster counts).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PUBLISHED = Counter(
    "groupwire_bus_published_events", "Events the relay in this process published to Redis"
)
BUS_RESETS = Counter(
    "groupwire_bus_republish", "Times the relay found Redis had lost entries and republished"
)
DELIVERIES = Counter(
    "groupwire_deliveries",
    "Event deliveries by subscriber and outcome (delivered, retry, dead_letter, skipped)",
    ["subscriber", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "groupwire_handler_seconds",
    "Time a subscriber's handler took per event",
    ["subscriber"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
DELIVERY_LATENCY = Histogram(
    "groupwire_delivery_latency_seconds",
    "Time from an event's recording to the end of its handler",
    ["subscriber"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
)
