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

The parts, one module each: :mod:`~groupwire.events.worker_slots` (the slot, the shared state),
:mod:`~groupwire.events.worker_progress` (registration, acknowledgements, progress),
:mod:`~groupwire.events.worker_leases` (leases, sharing the slots),
:mod:`~groupwire.events.worker_reading` (the read loop, claims) and
:mod:`~groupwire.events.worker_handling` (handlers, retries, dead letters); this module has the
worker itself: running, stopping, Redis errors, and the process entry points.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import redis
from sqlalchemy import Engine

from groupwire.events.delivery import RetryPolicy, replay_dead_letter
from groupwire.events.redis_bus import RedisBus
from groupwire.events.registry import SubscriberRegistry
from groupwire.events.worker_handling import EntryHandling
from groupwire.events.worker_leases import _RELEASE, _RENEW
from groupwire.events.worker_reading import StreamReading
from groupwire.events.worker_slots import CLAIMING, Slot
from groupwire.settings import Settings

log = logging.getLogger("groupwire.worker")


class RedisWorker(StreamReading, EntryHandling):
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
