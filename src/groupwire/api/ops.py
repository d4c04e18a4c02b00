"""Operations endpoints: ``GET /health`` and Prometheus ``GET /metrics`` (no API key needed).

``/health`` answers 200 ``{"status": "ok", "checks": {"db": ..., "bus": ...}}`` when the
database answers and the bus is reachable (Redis PING; the in-process bus always is), else 503
with ``status: "unavailable"`` and the failing check's error. Plugins add checks of their own
(``gw.health_checks``) and collectors to ``/metrics`` (``gw.metrics_collectors``). Load
balancers and orchestrators poll it; it never needs credentials and never reveals more than
the failure's class.

``/metrics`` is the Prometheus text format: this process's counters (events published by its
relay, deliveries, retries, dead letters, handler latency histogram) plus gauges read at scrape
time: outbox lag (events committed but not yet published, or not yet delivered in-process),
each subscriber's lag, unreplayed dead letters, and the delivery counts all workers add up in
Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from groupwire.app import Groupwire
from groupwire.events.bus_tables import bus_progress
from groupwire.store import repository as repo
from groupwire.store import tables

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness of the database and the event bus")
async def health(request: Request) -> JSONResponse:
    gw: Groupwire = request.app.state.gw
    checks = await asyncio.to_thread(_checks, gw)
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    gw: Groupwire = request.app.state.gw
    body = await asyncio.to_thread(_render, gw)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _checks(gw: Groupwire) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with gw.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["db"] = "ok"
    except Exception as error:
        checks["db"] = f"error: {type(error).__name__}"
    if gw.bus_relay is None:
        checks["bus"] = "ok"
    else:
        try:
            gw.bus_relay.bus.ping()
            checks["bus"] = "ok"
        except Exception as error:
            checks["bus"] = f"error: {type(error).__name__}"
    for name, check in gw.health_checks.items():
        try:
            checks[name] = check()
        except Exception as error:
            checks[name] = f"error: {type(error).__name__}"
    return checks


def _render(gw: Groupwire) -> bytes:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_StoreCollector(gw))
    for collector in gw.metrics_collectors:
        scrape.register(collector)
    return generate_latest(REGISTRY) + generate_latest(scrape)


class _StoreCollector(Collector):
    """Gauges computed from the database (and Redis) when Prometheus scrapes."""

    def __init__(self, gw: Groupwire) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Any]:
        gw = self.gw
        lag_by_subscriber: dict[str, int] = {}
        with gw.engine.connect() as conn:
            last = repo.last_sequence(conn)
            dead: dict[str, int] = dict(
                conn.execute(  # type: ignore[arg-type]
                    select(tables.dead_letter.c.subscriber, func.count())
                    .where(tables.dead_letter.c.replayed_at.is_(None))
                    .group_by(tables.dead_letter.c.subscriber)
                ).all()
            )
            if gw.bus_relay is not None:
                rows = conn.execute(
                    select(bus_progress.c.subscriber, func.min(bus_progress.c.last_sequence))
                    .where(bus_progress.c.bus == gw.bus_relay.bus.name)
                    .group_by(bus_progress.c.subscriber)
                ).all()
                lag_by_subscriber = {name: last - int(done) for name, done in rows}
            else:
                checkpoints: dict[str, int] = dict(
                    conn.execute(  # type: ignore[arg-type]
                        select(
                            tables.subscriber_checkpoint.c.subscriber,
                            tables.subscriber_checkpoint.c.last_sequence,
                        )
                    ).all()
                )
                lag_by_subscriber = {
                    s.name: last - int(checkpoints.get(s.name, 0)) for s in gw.subscribers
                }
        yield _gauge("groupwire_events_last_sequence", "Sequence of the newest event", last)
        if gw.bus_relay is not None:
            outbox_lag = gw.bus_relay.lag()
        else:
            outbox_lag = max(lag_by_subscriber.values(), default=0)
        yield _gauge(
            "groupwire_outbox_lag_events",
            "Events committed but not yet published (Redis bus) or delivered (in-process)",
            outbox_lag,
        )
        lag = GaugeMetricFamily(
            "groupwire_subscriber_lag_events",
            "Events a subscriber has yet to confirm",
            labels=["subscriber"],
        )
        for name, value in sorted(lag_by_subscriber.items()):
            lag.add_metric([name], value)
        yield lag
        letters = GaugeMetricFamily(
            "groupwire_dead_letters", "Dead letters not yet replayed", labels=["subscriber"]
        )
        for name, value in sorted(dead.items()):
            letters.add_metric([name], int(value))
        yield letters
        if gw.bus_relay is not None:
            cluster = CounterMetricFamily(
                "groupwire_cluster_deliveries",
                "Deliveries by all workers of the bus (counts since Redis started)",
                labels=["subscriber", "outcome"],
            )
            try:
                stats = gw.bus_relay.bus.cluster_stats()
            except Exception:
                stats = {}
            for key, value in sorted(stats.items()):
                outcome, _, subscriber = key.partition(":")
                cluster.add_metric([subscriber, outcome], value)
            yield cluster


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
