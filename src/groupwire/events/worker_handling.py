"""Handling entries: each slot's entries handed to its subscriber in order, a failed attempt
retried after the policy's delay (holding up that slot only), and the entry dead-lettered
(``dead_letter`` table) once its attempts ran out."""

from __future__ import annotations

import logging
import time
import traceback

from groupwire.domain.models import Event
from groupwire.events import metrics
from groupwire.events.delivery import Outcome, record_dead_letter
from groupwire.events.worker_leases import SlotLeases
from groupwire.events.worker_slots import Slot

log = logging.getLogger("groupwire.worker")


class EntryHandling(SlotLeases):
    """How a :class:`~groupwire.events.worker.RedisWorker` runs its subscribers on the entries."""

    def _handle_all(self, deadline: float) -> None:
        for slot in self.slots:
            if slot.buffer and self._valid(slot):
                self._handle(slot, deadline)

    def _handle(self, slot: Slot, deadline: float) -> None:
        sub = slot.subscription
        while slot.buffer and time.monotonic() < slot.valid_until - 0.05:
            if time.monotonic() < slot.retry_at:
                return
            entry_id, event = slot.buffer[0]
            if event is not None and sub.wants(event.type):
                started = time.perf_counter()
                try:
                    sub.call(event)
                except Exception as error:
                    if not self._failed(slot, event, error):
                        return
                else:
                    elapsed = time.perf_counter() - started
                    metrics.HANDLER_SECONDS.labels(sub.name).observe(elapsed)
                    metrics.DELIVERY_LATENCY.labels(sub.name).observe(
                        max(0.0, time.time() - event.time.timestamp())
                    )
                    metrics.DELIVERIES.labels(sub.name, "delivered").inc()
                    self._count("delivered", sub.name)
                    self.delivered += 1
            slot.buffer.popleft()
            slot.attempts = 0
            slot.to_ack.append(entry_id)
            slot.handled = max(slot.handled, _sequence(entry_id))
            if time.monotonic() > deadline:
                return

    def _failed(self, slot: Slot, event: Event, error: Exception) -> bool:
        """Count a failed attempt; True when the entry is done with (dead-lettered)."""
        sub = slot.subscription
        slot.attempts += 1
        allowed = sub.max_attempts or self.policy.max_attempts
        message = "".join(traceback.format_exception_only(error)).strip()
        if slot.attempts < allowed:
            log.warning(
                "subscriber %s failed on event %s (attempt %d/%d): %s",
                sub.name,
                event.id,
                slot.attempts,
                allowed,
                message,
            )
            slot.retry_at = time.monotonic() + self.policy.delay(slot.attempts)
            metrics.DELIVERIES.labels(sub.name, "retry").inc()
            self._count("retry", sub.name)
            self.retries += 1
            return False
        record_dead_letter(self.engine, sub, event, Outcome(False, slot.attempts, message))
        log.error(
            "subscriber %s dead-lettered event %s (%s) after %d attempts",
            sub.name,
            event.id,
            event.type,
            slot.attempts,
        )
        metrics.DELIVERIES.labels(sub.name, "dead_letter").inc()
        self._count("dead_letter", sub.name)
        self.dead_lettered += 1
        return True

    def _count(self, outcome: str, subscriber: str) -> None:
        key = f"{outcome}:{subscriber}"
        self._stats[key] = self._stats.get(key, 0) + 1


def _sequence(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])
