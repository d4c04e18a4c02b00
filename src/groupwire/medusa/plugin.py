"""The capture's health and metrics in Groupwire's ``/health`` and ``/metrics``.

Load it where the API runs (``GROUPWIRE_PLUGINS=groupwire.medusa.plugin``) with
``GROUPWIRE_MEDUSA_URL`` set (and ``GROUPWIRE_MEDUSA_SLOT`` when not ``groupwire``). It adds:

- ``/health`` check ``medusa_slot``: "ok" while the slot exists and retains less than
  ``GROUPWIRE_MEDUSA_MAX_LAG_BYTES`` of WAL, else an error (the whole answer is then 503): a
  stopped capture is seen before Medusa's disk fills with WAL;
- ``/metrics`` gauges ``groupwire_medusa_slot_lag_bytes`` (WAL since the slot's confirmed
  position: ``pg_current_wal_lsn() - confirmed_flush_lsn``), ``groupwire_medusa_slot_active``
  and ``groupwire_medusa_slot_exists``.

Without ``GROUPWIRE_MEDUSA_URL`` it adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from groupwire.hooks import hookimpl
from groupwire.medusa import slot as slots


class MedusaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GROUPWIRE_MEDUSA_", extra="ignore")

    url: str | None = Field(None, description="Medusa's PostgreSQL, as given to capture")
    slot: str = Field("groupwire", description="The capture's replication slot")
    max_lag_bytes: int = Field(
        1024**3, ge=0, description="WAL the slot may retain before /health reports an error"
    )


class SlotProbe:
    """Reads the slot's state on each call (a short-lived connection: scrapes are rare)."""

    def __init__(self, settings: MedusaSettings) -> None:
        assert settings.url is not None
        self.url = settings.url
        self.slot = settings.slot
        self.max_lag = settings.max_lag_bytes

    def state(self) -> slots.SlotState | None:
        with slots.connect(self.url, connect_timeout=5) as conn:
            return slots.slot_state(conn, self.slot)

    def health(self) -> str:
        state = self.state()
        if state is None:
            return "error: SlotMissing"
        if state.lag_bytes > self.max_lag:
            return "error: SlotLagTooLarge"  # the figure is in /metrics
        return "ok"


class SlotCollector(Collector):
    def __init__(self, probe: SlotProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Any]:
        try:
            state = self.probe.state()
        except Exception:
            return
        labels = [self.probe.slot]
        for name, doc, value in (
            ("exists", "Whether the capture's replication slot exists", state is not None),
            ("active", "Whether a process is reading the slot now", bool(state and state.active)),
            (
                "lag_bytes",
                "WAL written since the slot's confirmed position (retained by PostgreSQL)",
                state.lag_bytes if state else 0,
            ),
        ):
            gauge = GaugeMetricFamily(f"groupwire_medusa_slot_{name}", doc, labels=["slot"])
            gauge.add_metric(labels, float(value))
            yield gauge


@hookimpl
def register_subscribers(gw: Any) -> None:
    settings = MedusaSettings()
    if not settings.url:
        return
    probe = SlotProbe(settings)
    gw.health_checks["medusa_slot"] = probe.health
    gw.metrics_collectors.append(SlotCollector(probe))
