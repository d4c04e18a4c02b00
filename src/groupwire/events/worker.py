"""The Redis Streams worker: runs subscribers on the events the relay published.

Work is cut into *slots*, one per (subscriber, stream). Each subscriber has a consumer group
on every stream, so every subscriber sees every event. A slot is owned by one worker at a time
through a lease in Redis (``SET NX PX``, renewed every third of its lifetime); the workers
share the slots evenly (each takes at most ``ceil(slots / live workers)``). Because one worker
handles a slot's entries one after the other, the events of a group reach a subscriber in
commit order; an entry being retried holds up its slot only (that subscriber, that stream).

At-least-once, in order:

* an entry is acknowledged (XACK) only after its handler returned, or after it was
  dead-lettered (``dead_letter`` table) once its attempts ran out;
* a worker that takes over a slot first claims the previous owner's pending entries
  (XAUTOCLAIM once they are ``claim_idle`` seconds idle) and handles them, oldest first,
  before it reads anything new, so a dead worker's entries are neither lost nor overtaken;
* a worker reads and handles only while its lease is known valid by its own clock, so a
  paused process that wakes up after losing its lease renews (and fails) before touching
  entries.

Duplicates happen (a worker killed after its handler committed, before XACK; a republish after
Redis lost data): subscribers dedupe by event id, see :mod:`groupwire.events.idempotency`.

Progress: after handling, a slot knows every entry of its stream up to sequence N is done;
workers save it in ``bus_progress`` so the relay can republish from the right place when Redis
loses data and trim what everyone has done.

Processes: ``groupwire worker`` (with the relay) and ``python -m groupwire.cli.redis_worker``
(workers only) build one from a ``Groupwire`` instance (``gw.worker()``); this module knows
only the engine, the settings, the subscriber registry and the retry policy it is handed.

Stopping (SIGTERM): the worker stops reading, finishes the entries it holds (up to
``shutdown_timeout``), acknowledges them, saves progress and releases its leases; an entry
still waiting for a retry stays pending and is claimed by the next owner.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Engine, select

from groupwire.domain.models import Event
from groupwire.events import metrics
from groupwire.events.bus_tables import bus_progress
from groupwire.events.delivery import Outcome, RetryPolicy, record_dead_letter, replay_dead_letter
from groupwire.events.redis_bus import (
    RedisBus,
    decode,
    register_progress,
    registered_progress,
)
from groupwire.events.registry import SubscriberRegistry, Subscription
from groupwire.settings import Settings
from groupwire.store.engine import WRITE, dialect_insert

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

CLAIMING = "claiming"
LIVE = "live"


class Slot:
    """One subscriber on one stream, while this worker owns it."""

    def __init__(self, subscription: Subscription, stream: int, key: str, lease_key: str):
        self.subscription = subscription
        self.stream = stream
        self.key = key
        self.lease_key = lease_key
        self.owned = False
        self.valid_until = 0.0
        self.state = CLAIMING
        self.buffer: deque[tuple[bytes, Event | None]] = deque()
        self.to_ack: list[bytes] = []
        self.attempts = 0
        self.retry_at = 0.0
        self.claim_at = 0.0
        self.handled = 0
        self.saved = -1
        self.draining = False

    @property
    def group(self) -> str:
        return self.subscription.name

    def reset(self) -> None:
        self.state = CLAIMING
        self.buffer.clear()
        self.to_ack.clear()
        self.attempts = 0
        self.retry_at = 0.0
        self.claim_at = 0.0
        self.draining = False


class RedisWorker:
    """Runs the subscriptions of ``registry`` on Redis Streams until stopped."""

    def __init__(
        self,
        engine: Engine,
        bus: RedisBus,
        registry: SubscriberRegistry,
        policy: RetryPolicy | None = None,
        *,
        consumer: str | None = None,
        lease_seconds: float = 5.0,
        claim_idle: float = 5.0,
        batch_size: int = 200,
        block_ms: int = 100,
        progress_interval: float = 0.5,
        shutdown_timeout: float = 10.0,
        subscribers: Iterable[str] | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.client: redis.Redis = bus.client
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = int(lease_seconds * 1000)
        self.claim_idle_ms = int(claim_idle * 1000)
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.progress_interval = progress_interval
        self.shutdown_timeout = shutdown_timeout
        self.only = set(subscribers) if subscribers is not None else None
        self.stopping = threading.Event()
        self.delivered = 0
        self.dead_lettered = 0
        self.retries = 0
        self.acquired = 0
        self.slots: list[Slot] = []
        self._thread: threading.Thread | None = None
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._stats: dict[str, int] = {}

    @classmethod
    def from_settings(
        cls,
        engine: Engine,
        settings: Settings,
        registry: SubscriberRegistry,
        policy: RetryPolicy | None = None,
        **options: Any,
    ) -> RedisWorker:
        """A worker for ``registry``'s subscribers on the bus ``settings`` name, with the
        lease, claim and batch options of ``settings`` unless ``options`` say otherwise."""
        options.setdefault("lease_seconds", settings.bus_lease_seconds)
        options.setdefault("claim_idle", settings.bus_claim_idle_seconds)
        options.setdefault("batch_size", min(settings.bus_batch_size, 500))
        return cls(engine, RedisBus.from_settings(settings), registry, policy, **options)

    # --- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` (or SIGTERM via :func:`run_until_signalled`)."""
        self._build_slots()
        self._prepare_groups([s.subscription for s in self.slots])
        next_lease = next_progress = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now >= next_lease:
                    self._lease_round()
                    next_lease = time.monotonic() + self.lease_ms / 3000
                self._fill()
                self._handle_all(deadline=time.monotonic() + self.lease_ms / 3000)
                self._flush()
                if time.monotonic() >= next_progress:
                    self._save_progress()
                    next_progress = time.monotonic() + self.progress_interval
            except redis.RedisError as error:
                self._on_redis_error(error)
            except Exception:
                log.exception("worker %s: unexpected error; continuing", self.consumer)
                self.stopping.wait(0.5)
        self._shutdown()

    def start(self) -> RedisWorker:
        """Run in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.run, name="groupwire-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.shutdown_timeout + 5)
            self._thread = None

    def replay_dead_letters(self, subscriber: str | None = None) -> tuple[int, int]:
        """Deliver this worker's subscribers' dead letters again, here; (delivered, failing)."""
        from groupwire.events.delivery import list_dead_letters

        ok = failed = 0
        for letter in list_dead_letters(self.engine, subscriber=subscriber):
            try:
                subscription = self.registry.get(letter.subscriber)
            except KeyError:
                continue
            if replay_dead_letter(self.engine, letter, subscription, self.policy):
                ok += 1
            else:
                failed += 1
        return ok, failed

    # --- slots, groups, leases ----------------------------------------------------------

    def _build_slots(self) -> None:
        subscriptions = [s for s in self.registry if self.only is None or s.name in self.only]
        self.slots = [
            Slot(sub, n, self.bus.stream_keys[n], self.bus.lease_key(sub.name, n))
            for sub in subscriptions
            for n in range(self.bus.partitions)
        ]

    def _prepare_groups(self, subscriptions: Iterable[Subscription]) -> None:
        """Register the subscribers that are new (their ``bus_progress`` rows), then create the
        consumer groups (and streams) that are missing, each at its subscriber's saved progress.

        The saved progress is the truth, in PostgreSQL, which a Redis loss does not touch: a
        group created at ``<progress>-0`` is handed every entry after it, whether the relay
        republished it before the group existed or republishes it afterwards. A new
        subscriber's progress starts where its subscription says
        (:meth:`~groupwire.events.registry.Subscription.first_position`): at its ``start``
        (the built-in features: the lowest start of their endpoints, emails and rules, so
        nothing committed after one is skipped, however late the first worker comes), else
        at 0, or with ``from_now`` at the bus cursor of its first registration. A row that
        exists is never reset, so a restart, or Redis coming back, never skips anything.
        See docs/scale-out.md ("Why nothing is lost").
        """
        subscriptions = list({s.name: s for s in subscriptions}.values())
        if not subscriptions:
            return
        saved = registered_progress(self.engine, self.bus.name, [s.name for s in subscriptions])
        streams = range(self.bus.partitions)
        new = [s for s in subscriptions if any((s.name, n) not in saved for n in streams)]
        if new:
            register_progress(self.engine, self.bus, new)
            saved = registered_progress(self.engine, self.bus.name, [s.name for s in subscriptions])
        pipe = self.client.pipeline(transaction=False)
        for sub in subscriptions:
            for n, key in enumerate(self.bus.stream_keys):
                pipe.xgroup_create(key, sub.name, id=f"{saved[(sub.name, n)]}-0", mkstream=True)
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

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

    # --- reading ------------------------------------------------------------------------

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

    # --- handling -----------------------------------------------------------------------

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

    def _flush(self) -> None:
        """Acknowledge handled entries and add to the cluster-wide counts."""
        pipe = self.client.pipeline(transaction=False)
        queued = False
        for slot in self.slots:
            if slot.to_ack:
                pipe.xack(slot.key, slot.group, *slot.to_ack)
                slot.to_ack = []
                queued = True
        for key, count in self._stats.items():
            pipe.hincrby(self.bus.stats_key, key, count)
            queued = True
        self._stats = {}
        if queued:
            pipe.execute()

    # --- progress -----------------------------------------------------------------------

    def _load_progress(self, slot: Slot) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(bus_progress.c.last_sequence).where(
                    bus_progress.c.bus == self.bus.name,
                    bus_progress.c.subscriber == slot.group,
                    bus_progress.c.stream == slot.stream,
                )
            ).scalar_one_or_none()
        slot.saved = int(value or 0)
        return slot.saved

    def _save_progress(self) -> None:
        """Save how far each slot is done. A slot this worker has lost (its lease expired,
        Redis restarted) is saved too: what it handled while it owned it is done, whoever owns
        it now, and the progress only ever rises (the loss's republish starts lower without)."""
        changed = [s for s in self.slots if (s.owned or s.saved >= 0) and s.handled > s.saved]
        if not changed:
            return
        now = datetime.now(UTC)
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            for slot in changed:
                statement = dialect_insert(conn, bus_progress).values(
                    bus=self.bus.name,
                    subscriber=slot.group,
                    stream=slot.stream,
                    last_sequence=slot.handled,
                    updated_at=now,
                )
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["bus", "subscriber", "stream"],
                        set_={"last_sequence": slot.handled, "updated_at": now},
                        where=bus_progress.c.last_sequence < slot.handled,
                    )
                )
        for slot in changed:
            slot.saved = slot.handled

    # --- errors and stopping ------------------------------------------------------------

    def _on_redis_error(self, error: redis.RedisError) -> None:
        log.warning("worker %s: Redis error (%s); retrying", self.consumer, error)
        for slot in self.slots:  # entries we hold stay pending in Redis, if it kept them
            if slot.owned:
                slot.buffer.clear()
                slot.to_ack.clear()
                slot.state = CLAIMING
        try:  # what was handled is done whatever Redis lost: PostgreSQL keeps it
            self._save_progress()
        except Exception as db_error:
            log.warning("worker %s: saving progress failed (%s)", self.consumer, db_error)
        self.stopping.wait(0.5)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.shutdown_timeout
        try:
            while any(s.buffer and self._valid(s) and not s.attempts for s in self.slots):
                if time.monotonic() > deadline:
                    break
                self._handle_all(deadline)
            self._flush()
            self._save_progress()
            owned = [s for s in self.slots if s.owned]
            if owned:
                self._release(keys=[s.lease_key for s in owned], args=[self.consumer])
            self.client.zrem(self.bus.workers_key, self.consumer)
        except Exception as error:
            log.warning(
                "worker %s: unclean stop (%s); pending entries stay claimable", self.consumer, error
            )
        for slot in self.slots:
            slot.owned = False
        log.info(
            "worker %s stopped: %d delivered, %d retries, %d dead-lettered, %d leases taken",
            self.consumer,
            self.delivered,
            self.retries,
            self.dead_lettered,
            self.acquired,
        )


def _sequence(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


def _decoded(entries: list[Any]) -> list[tuple[bytes, Event | None]]:
    """Stream entries as events; an entry trimmed while pending comes back empty (None)."""
    out: list[tuple[bytes, Event | None]] = []
    for entry_id, fields in entries:
        payload = fields.get(b"e") if fields else None
        out.append((entry_id, decode(payload) if payload is not None else None))
    return out


def run_until_signalled(worker: RedisWorker) -> None:
    """Run ``worker`` in this thread; SIGTERM and SIGINT stop it gracefully."""

    def stop(_signum: int, _frame: Any) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()


def run_redis_worker(worker: RedisWorker, stopping: threading.Event) -> RedisWorker:
    """Run ``worker`` in a background thread until ``stopping`` is set (``groupwire worker`` in
    Redis mode); returns it once it has stopped gracefully. Raises if it died on its own."""
    worker.start()
    thread = worker._thread
    while not stopping.wait(0.5):
        if thread is not None and not thread.is_alive():
            raise RuntimeError(f"worker {worker.consumer} stopped unexpectedly")
    worker.stop()
    return worker
