"""Slots and their leases: which slots this worker owns, taken, renewed, shared evenly with the
live workers (``ceil(slots / live workers)`` each) and released, and whether a lease is still
known valid by this worker's clock."""

from __future__ import annotations

import logging
import math
import random
import time

from groupwire.events.worker_progress import WorkerProgress
from groupwire.events.worker_slots import Slot

log = logging.getLogger("groupwire.worker")

_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""


class SlotLeases(WorkerProgress):
    """The leases of a :class:`~groupwire.events.worker.RedisWorker`'s slots."""

    def _build_slots(self) -> None:
        subscriptions = [s for s in self.registry if self.only is None or s.name in self.only]
        self.slots = [
            Slot(sub, n, self.bus.stream_keys[n], self.bus.lease_key(sub.name, n))
            for sub in subscriptions
            for n in range(self.bus.partitions)
        ]

    def _lease_round(self) -> None:
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.bus.workers_key, {self.consumer: now_ms + self.lease_ms})
        pipe.zremrangebyscore(self.bus.workers_key, "-inf", now_ms)
        pipe.zcard(self.bus.workers_key)
        live = max(1, int(pipe.execute()[2]))
        started = time.monotonic()
        owned = [s for s in self.slots if s.owned]
        if owned:
            keys = [s.lease_key for s in owned]
            held = self._renew(keys=keys, args=[self.consumer, self.lease_ms])
            lost = False
            for slot, ok in zip(owned, held, strict=True):
                if ok:
                    slot.valid_until = started + self.lease_ms / 1000
                else:
                    log.warning("worker %s lost %s:%d", self.consumer, slot.group, slot.stream)
                    slot.owned = False
                    slot.reset()
                    lost = True
            if lost:  # what they handled stays done: saved before any is taken (and reloaded)
                self._save_progress()
        target = math.ceil(len(self.slots) / live)
        owned = [s for s in self.slots if s.owned]
        if len(owned) < target and not self.stopping.is_set():
            free = [s for s in self.slots if not s.owned]
            random.shuffle(free)
            count = len(owned)
            for slot in free:
                if count >= target:
                    break
                if self.client.set(slot.lease_key, self.consumer, nx=True, px=self.lease_ms):
                    slot.owned = True
                    slot.reset()
                    slot.valid_until = started + self.lease_ms / 1000
                    slot.handled = self._load_progress(slot)
                    count += 1
                    self.acquired += 1
        elif len(owned) > target:
            # hand over the surplus: stop reading it, release each once its entries are done
            excess = len(owned) - target - sum(1 for s in owned if s.draining)
            for slot in sorted((s for s in owned if not s.draining), key=lambda s: len(s.buffer)):
                if excess <= 0:
                    break
                slot.draining = True
                excess -= 1
        else:
            for slot in owned:
                slot.draining = False
        self._release_slots([s for s in self.slots if s.owned and s.draining and not s.buffer])

    def _release_slots(self, slots: list[Slot]) -> None:
        if not slots:
            return
        self._flush()
        self._save_progress()
        self._release(keys=[s.lease_key for s in slots], args=[self.consumer])
        for slot in slots:
            slot.owned = False
            slot.reset()

    def _valid(self, slot: Slot) -> bool:
        return slot.owned and time.monotonic() < slot.valid_until - 0.05
