"""Capture inside ``groupwire serve`` / ``worker``, and its health and metrics.

Load it where the API runs (``GROUPWIRE_PLUGINS=groupwire.medusa.plugin``) with
``GROUPWIRE_MEDUSA_URL`` set (and ``GROUPWIRE_MEDUSA_SLOT`` when not ``groupwire``). With
``GROUPWIRE_MEDUSA_CAPTURE=1`` the process also runs the capture loop in a background thread
(one of ``gw.workers``: started by ``gw.start()``, stopped by ``gw.close()``);
``groupwire serve --medusa-capture URL`` and ``groupwire worker --medusa-capture URL`` set
these three variables. Several processes may run it: the slot lets one read at a time, the
others retry every second and take over when it stops. It adds:

- ``/health`` check ``medusa_slot``: "ok" while the slot exists, is not invalidated or about to
  be (``wal_status`` ``lost`` / ``unreserved``, with ``max_slot_wal_keep_size``) and retains
  less than ``GROUPWIRE_MEDUSA_MAX_LAG_BYTES`` of WAL, else an error (the whole answer is then
  503): a stopped capture is seen before Medusa's disk fills with WAL;
- with capture on, ``/health`` check ``medusa_capture``: "ok" while the loop runs without
  failing, else the last failure (another process holding the slot shows here too);
- ``/metrics`` gauges ``groupwire_medusa_slot_lag_bytes`` (WAL since the slot's confirmed
  position: ``pg_current_wal_lsn() - confirmed_flush_lsn``), ``groupwire_medusa_slot_active``,
  ``groupwire_medusa_slot_exists``, ``groupwire_medusa_slot_wal_status`` (label ``status``: 1
  for the slot's ``wal_status``, 0 for the others) and, with ``max_slot_wal_keep_size``,
  ``groupwire_medusa_slot_safe_wal_size_bytes``.

Without ``GROUPWIRE_MEDUSA_URL`` it adds nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Literal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from groupwire.hooks import hookimpl
from groupwire.medusa import slot as slots
from groupwire.medusa.capture import CaptureOptions, MedusaCapture

log = logging.getLogger("groupwire.medusa")

STARTING = "starting"
WAL_STATUSES = ("reserved", "extended", "unreserved", "lost")


class MedusaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GROUPWIRE_MEDUSA_", extra="ignore")

    url: str | None = Field(None, description="Medusa's PostgreSQL, as given to capture")
    slot: str = Field("groupwire", description="The capture's replication slot")
    publication: str = Field("groupwire_medusa", description="The capture's publication")
    schema_name: str = Field(
        "public",
        validation_alias="GROUPWIRE_MEDUSA_SCHEMA",
        description="Schema of Medusa's tables",
    )
    capture: bool = Field(
        False, description="Run capture in a background thread of this process (serve, worker)"
    )
    initial: Literal["silent", "events"] = Field(
        "silent", description="First start: copy Medusa's state silently, or as events"
    )
    resync: bool = Field(
        False,
        description="When the store holds a copy but the slot is gone or lost: re-sync the"
        " copy, recording the differences as events, then capture from a new slot",
    )
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
        if state.invalidated:
            return "error: SlotInvalidated"  # wal_status lost: see `groupwire medusa status`
        if state.wal_status == "unreserved":
            return "error: SlotWalUnreserved"  # invalidated at the next checkpoint
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
        statuses = GaugeMetricFamily(
            "groupwire_medusa_slot_wal_status",
            "The slot's wal_status (1 for the current one): reserved, extended, unreserved"
            " (invalidated at the next checkpoint unless capture catches up), lost (invalidated)",
            labels=["slot", "status"],
        )
        for status in WAL_STATUSES:
            current = state is not None and state.wal_status == status
            statuses.add_metric([*labels, status], 1.0 if current else 0.0)
        yield statuses
        if state is not None and state.safe_wal_size is not None:
            safe = GaugeMetricFamily(
                "groupwire_medusa_slot_safe_wal_size_bytes",
                "WAL that may still be written before the slot is at risk of invalidation",
                labels=["slot"],
            )
            safe.add_metric(labels, float(state.safe_wal_size))
            yield safe


class CaptureThread:
    """The capture loop in a background thread: ``start()`` / ``stop()`` (``gw.workers``)."""

    def __init__(self, gw: Any, settings: MedusaSettings) -> None:
        assert settings.url is not None
        self.gw = gw
        self.options = CaptureOptions(
            medusa_url=settings.url,
            slot=settings.slot,
            publication=settings.publication,
            schema=settings.schema_name,
            initial=settings.initial,
            resync=settings.resync,
        )
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure: str | None = STARTING

    def start(self) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="groupwire-medusa-capture")
        self.thread.daemon = True
        self.thread.start()

    def run(self) -> None:
        capture = MedusaCapture(self.gw.service, self.options)
        try:
            while not self.stopping.is_set():
                try:
                    capture.install()
                    capture.run(self.stopping, on_failure=self.failed)
                except Exception as error:  # install failed: Medusa's database unreachable...
                    self.failed(error)
                    capture.close()
                    self.stopping.wait(5.0)
        finally:
            capture.close()

    def failed(self, error: BaseException | None) -> None:
        if error is None:
            self.failure = None
            return
        if self.failure in (None, STARTING):  # once a run of failures (one line each)
            log.warning("Medusa capture failed: %s", error)
        self.failure = f"{type(error).__name__}: {error}"

    def health(self) -> str:
        return "ok" if self.failure is None else f"error: {self.failure}"

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


@hookimpl
def register_subscribers(gw: Any) -> None:
    settings = MedusaSettings()
    if not settings.url:
        return
    probe = SlotProbe(settings)
    gw.health_checks["medusa_slot"] = probe.health
    gw.metrics_collectors.append(SlotCollector(probe))
    if settings.capture:
        capture = CaptureThread(gw, settings)
        gw.workers.append(capture)
        gw.health_checks["medusa_capture"] = capture.health
