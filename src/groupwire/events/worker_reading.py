"""The read loop: every owned slot with nothing to do is given its next entries, first the
previous owners' pending entries (claimed with XAUTOCLAIM, handled oldest first), then new ones
(XREADGROUP); consumer groups lost with Redis's data are recreated."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from groupwire.domain.models import Event
from groupwire.events.redis_bus import decode
from groupwire.events.registry import Subscription
from groupwire.events.worker_leases import SlotLeases
from groupwire.events.worker_slots import CLAIMING, LIVE, Slot

log = logging.getLogger("groupwire.worker")


class StreamReading(SlotLeases):
    """How a :class:`~groupwire.events.worker.RedisWorker` reads its slots' entries."""

    def _fill(self) -> None:
        """Give every owned slot with nothing to do its next entries."""
        now = time.monotonic()
        waiting = [
            s
            for s in self.slots
            if self._valid(s) and not s.buffer and not s.draining and now >= s.retry_at
        ]
        for slot in [s for s in waiting if s.state == CLAIMING and now >= s.claim_at]:
            self._claim(slot)
        live = [s for s in waiting if s.state == LIVE]
        busy = any(s.buffer for s in self.slots)
        by_group: dict[str, list[Slot]] = {}
        for slot in live:
            by_group.setdefault(slot.group, []).append(slot)
        if not by_group:
            if not busy:
                self.stopping.wait(self.block_ms / 1000)
            return
        block = None if busy else max(1, self.block_ms // len(by_group))
        for group, slots in by_group.items():
            self._read_new(group, slots, block)

    def _read_new(self, group: str, slots: list[Slot], block: int | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.bus.marker_key)
        pipe.xreadgroup(
            group,
            self.consumer,
            {s.key: ">" for s in slots},
            count=self.batch_size,
            block=block,
        )
        try:
            marker_raw, reply = pipe.execute()
        except redis.ResponseError as error:
            if "NOGROUP" in str(error):
                self._lost_groups([s.subscription for s in slots])
                return
            raise
        got: dict[str, list[Any]] = {}
        for key, entries in reply or []:
            got[key.decode() if isinstance(key, bytes) else key] = entries
        marker = int(marker_raw) if marker_raw is not None else None
        for slot in slots:
            entries = got.get(slot.key)
            if entries:
                slot.buffer.extend(_decoded(entries))
            elif marker is not None and marker > slot.handled:
                slot.handled = marker  # every entry published up to the marker is done here

    def _claim(self, slot: Slot) -> None:
        """Take over the previous owners' pending entries before reading new ones."""
        try:
            info = self.client.xpending(slot.key, slot.group)
        except redis.ResponseError as error:
            if "NOGROUP" in str(error):
                self._lost_groups([slot.subscription])
                return
            raise
        consumers = {
            (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
            for c in info.get("consumers") or []
        }
        foreign = sum(n for name, n in consumers.items() if name != self.consumer)
        if foreign:
            self.client.xautoclaim(
                slot.key,
                slot.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=1000,
                justid=True,
            )
            slot.claim_at = time.monotonic() + 0.1
            return
        if consumers.get(self.consumer):
            reply: Any = self.client.xreadgroup(
                slot.group, self.consumer, {slot.key: "0"}, count=self.batch_size
            )
            entries = reply[0][1] if reply else []
            if entries:
                slot.buffer.extend(_decoded(entries))
                return
        slot.state = LIVE
        self._forget_dead_consumers(slot)

    def _forget_dead_consumers(self, slot: Slot) -> None:
        """Drop consumers of this group with nothing pending that left long ago."""
        try:
            for info in self.client.xinfo_consumers(slot.key, slot.group):
                name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
                if name != self.consumer and not info["pending"] and info["idle"] > 60_000:
                    self.client.xgroup_delconsumer(slot.key, slot.group, name)
        except redis.ResponseError:
            pass

    def _lost_groups(self, subscriptions: list[Subscription]) -> None:
        """Redis lost the streams (restart): recreate the groups; the relay republishes."""
        log.warning("worker %s: consumer groups are gone; recreating them", self.consumer)
        # What this worker handled is done whatever Redis forgot: saved first, the groups
        # start after it and the republished entries it already handled are not redone.
        self._save_progress()
        names = {s.name for s in subscriptions}
        for slot in self.slots:
            if slot.group in names:
                slot.reset()
        self._prepare_groups(subscriptions)


def _decoded(entries: list[Any]) -> list[tuple[bytes, Event | None]]:
    """Stream entries as events; an entry trimmed while pending comes back empty (None)."""
    out: list[tuple[bytes, Event | None]] = []
    for entry_id, fields in entries:
        payload = fields.get(b"e") if fields else None
        out.append((entry_id, decode(payload) if payload is not None else None))
    return out
