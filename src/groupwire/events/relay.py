"""The in-process relay: reads committed events from the outbox and hands them to subscribers.

Each subscription gets its own thread, so a slow or failing subscriber delays only itself.
A thread reads events after its checkpoint in sequence order, calls the handler (retrying
with backoff, then dead-lettering), and advances the checkpoint. Commits in this process wake
the threads at once; commits by other processes are picked up by polling.

A commit in this process also hands its events to each cursor (:meth:`OutboxRelay.wake`):
when they are exactly the events after the cursor's position, the cursor takes them from
there instead of reading them back from the log (one SELECT per subscriber and commit less),
and a cursor whose subscription wants none of them moves past them without waking its
thread. Anything else (events of other processes, a gap, a large bulk change) is read from
the log as before, so the order and at-least-once delivery do not depend on the hand-off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Engine

from groupwire.domain.models import Event
from groupwire.events import checkpoints
from groupwire.events.delivery import (
    Outcome,
    RetryPolicy,
    deliver,
    deliver_many,
    record_dead_letter,
)
from groupwire.events.registry import (
    EventBatch,
    SubscriberRegistry,
    Subscription,
    routing_version_of,
)
from groupwire.store import event_log
from groupwire.store import repository as repo
from groupwire.store.engine import connection_lost, reading

log = logging.getLogger("groupwire.relay")

HANDED_MAX = 64
"""Commits a cursor keeps handed to it before it falls back to reading the log."""

_READING = threading.Lock()
"""Held by a subscription's thread while it reads a batch back from the log: one thread of
the process at a time. Reading a bulk change's run back builds hundreds of events per batch,
pure Python work; the subscribers' threads doing it together only take turns on the
interpreter anyway, and took the request threads' turns with them: bulk adds of 10,000 one
after the other on SQLite took 300-340 ms each while four subscribers expanded the previous
one together, 170 ms with this lock (the floor: 75-95 ms). Handlers run outside it: a slow
one delays only itself."""


class SubscriptionCursor:
    """Delivers one subscription's pending events; used by its thread or synchronously."""

    def __init__(
        self,
        engine: Engine,
        subscription: Subscription,
        policy: RetryPolicy,
        *,
        batch_size: int = 500,
        flush_every: int = 1000,
        flush_seconds: float = 0.25,
    ) -> None:
        self.engine = engine
        self.subscription = subscription
        self.policy = policy
        self.batch_size = batch_size
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self.position = checkpoints.load(engine, subscription)
        self._saved = self.position
        self._saved_at = 0.0
        self._unsaved = 0
        self.delivered = 0
        self.dead_lettered = 0
        self._handed: list[Sequence[Event]] = []
        self._handed_lock = threading.Lock()
        self.caught_up = False
        self._database_lost = False  # the last failure was a lost connection (logged once)

    def offer(self, events: Sequence[Event]) -> None:
        """Events this process just committed, in sequence order: kept for the next batch,
        or passed over at once when the subscription wants none of them and they follow the
        position (without waiting for the thread, which is then not woken)."""
        count = len(events)
        if not count:
            return
        if count <= self.batch_size and self._lock.acquire(blocking=False):
            try:
                first = _first_sequence(events)
                if (
                    first == self.position + 1
                    and not self._pending_handed()
                    and not any(self.subscription.wants(t) for t in _types(events))
                ):
                    self.position, self._unsaved = first + count - 1, self._unsaved + count
                    return
            finally:
                self._lock.release()
        with self._handed_lock:
            self._handed.append(events)
            del self._handed[:-HANDED_MAX]
        self.wake.set()

    def _pending_handed(self) -> bool:
        with self._handed_lock:
            return bool(self._handed)

    def _take_handed(self) -> EventBatch | None:
        """The handed events that directly follow the position (at most a batch), or None
        when they do not: then the log is read. The batch carries the commits' routing
        version when they all share one."""
        with self._handed_lock:
            handed, self._handed = self._handed, []
        batch = EventBatch()
        versions = set()
        expected = self.position + 1
        for events in handed:
            first = _first_sequence(events)
            if first + len(events) - 1 < expected:  # already passed
                continue
            if first != expected or len(batch) + len(events) > self.batch_size:
                return None
            # Each subscriber gets its own copy of the data, as read from the log.
            batch += [replace(e, data=json.loads(json.dumps(e.data))) for e in events]
            versions.add(routing_version_of(events))
            expected = first + len(events)
        if not batch:
            return None
        if len(versions) == 1:
            batch.routing_version = versions.pop()
        return batch

    def deliver_batch(self) -> int:
        """Deliver up to one batch; returns how many events the checkpoint moved past."""
        with self._lock:
            batch: list[Event] | None = self._take_handed()
            self.caught_up = batch is not None  # handed events end at the last commit seen
            if batch is None:
                with _READING, reading(self.engine) as conn:
                    batch = event_log.events_between(conn, self.position, self.batch_size)
            if not batch:
                return 0
            if self.subscription.batch:
                return self._deliver_together(batch)
            moved = 0
            for event in batch:
                if self.stop.is_set():
                    break
                if not self._handle(event):
                    break
                self._advance(event.sequence, 1)
                moved += 1
            return moved

    def _advance(self, position: int, events: int) -> None:
        """Move past ``events`` more events; the checkpoint is saved every ``flush_seconds``
        or ``flush_every`` events, not per event nor per batch: a restart after a crash may
        deliver those again (at least once), never skip them. (Saved every 100 events, a
        10,000-event bulk change cost each of the four built-in subscribers 20 write
        transactions. Every 10,000 cost the least CPU on PostgreSQL, but on SQLite the next
        bulk change then waited longer for the interpreter and the database: 1,000 kept both,
        measured with ``benchmarks/api_floor.py``.)"""
        self.position = position
        self._unsaved += events
        if (
            self._unsaved >= self.flush_every
            or time.monotonic() - self._saved_at >= self.flush_seconds
        ):
            self._save()

    def _save(self) -> None:
        if self.position != self._saved:
            checkpoints.save(self.engine, self.subscription.name, self.position)
            self._saved = self.position
        self._saved_at, self._unsaved = time.monotonic(), 0

    def flush(self) -> None:
        """Save the checkpoint now if it is behind (stopping, or idle for a while)."""
        with self._lock:
            self._save()

    def _deliver_together(self, batch: list[Event]) -> int:
        """A batch subscription gets the batch's matching events in one call; if that keeps
        failing, they are tried one by one, so only the events that fail alone are
        dead-lettered."""
        wanted = EventBatch(
            (event for event in batch if self.subscription.wants(event.type)),
            routing_version_of(batch),
        )
        if wanted:
            outcome = deliver_many(self.subscription, wanted, self.policy, self.stop)
            if self.stop.is_set() and not outcome.delivered:
                return 0
            if outcome.delivered:
                self.delivered += len(wanted)
            elif len(wanted) == 1:  # alone already: trying it alone again would double its attempts
                self._dead_letter(wanted[0], outcome)
            else:
                for event in wanted:
                    if not self._handle(event):
                        return 0  # stopping: the checkpoint stays before this batch
        self._advance(batch[-1].sequence, len(batch))
        return len(batch)

    def _handle(self, event: Event) -> bool:
        """False only when stopping mid-retry (the event stays pending)."""
        if not self.subscription.wants(event.type):
            return True
        outcome = deliver(self.subscription, event, self.policy, self.stop)
        if outcome.delivered:
            self.delivered += 1
            return True
        if self.stop.is_set():
            return False
        self._dead_letter(event, outcome)
        return True

    def _dead_letter(self, event: Event, outcome: Outcome) -> None:
        record_dead_letter(self.engine, self.subscription, event, outcome)
        self.dead_lettered += 1
        log.error(
            "subscriber %s dead-lettered event %s (%s) after %d attempts",
            self.subscription.name,
            event.id,
            event.type,
            outcome.attempts,
        )

    def run(self, poll_interval: float) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            try:
                moved = self.deliver_batch()
                if self._database_lost:
                    self._database_lost = False
                    log.info("relay for %s: the database answers again", self.subscription.name)
            except Exception as error:
                self._failed("relay for %s", error, "; retrying")
                moved = 0
                self.stop.wait(poll_interval)
            if not moved or self.caught_up:  # a later commit wakes it; others are polled
                timeout = poll_interval
                if self.position != self._saved:  # idle with progress unsaved: save it soon
                    due = self._saved_at + self.flush_seconds - time.monotonic()
                    if due <= 0:
                        self._flush_logged()
                    else:
                        timeout = min(timeout, due)
                if self.wake.wait(timeout) and self.subscription.linger:
                    # let the commits of the next moment join this batch
                    self.stop.wait(self.subscription.linger)
        self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception as error:
            self._failed("saving the checkpoint of %s", error)

    def _failed(self, what: str, error: Exception, then: str = "") -> None:
        """A lost database connection (a restart of the server, say) is one warning line for
        the first failure of a run of them, and nothing more until the database answers;
        anything else is logged with its traceback: it may be a bug."""
        if not connection_lost(error):
            log.exception(what + " failed" + then, self.subscription.name)
            return
        if not self._database_lost:
            self._database_lost = True
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()
            log.warning(
                what + ": the database connection is lost (%s)" + then,
                self.subscription.name,
                " ".join(reason[0].split()) if reason else type(error).__name__,
            )


class OutboxRelay:
    """Runs a :class:`SubscriptionCursor` per subscription, in threads or on demand."""

    def __init__(
        self,
        engine: Engine,
        registry: SubscriberRegistry,
        policy: RetryPolicy | None = None,
        *,
        poll_interval: float = 0.5,
        batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.cursors: dict[str, SubscriptionCursor] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.running = False
        self._lock = threading.Lock()
        registry.listeners.append(self._on_subscribe)

    def cursor(self, subscription: Subscription) -> SubscriptionCursor:
        with self._lock:
            found = self.cursors.get(subscription.name)
            if found is None:
                found = SubscriptionCursor(
                    self.engine, subscription, self.policy, batch_size=self.batch_size
                )
                self.cursors[subscription.name] = found
            return found

    def start(self) -> None:
        """Start delivering in background threads (one per subscription)."""
        self.running = True
        for subscription in self.registry:
            self._start_thread(subscription)

    def _on_subscribe(self, subscription: Subscription) -> None:
        self.cursor(subscription)  # fixes where a new subscriber starts: at subscription time
        if self.running:
            self._start_thread(subscription)

    def _start_thread(self, subscription: Subscription) -> None:
        if subscription.name in self.threads:
            return
        cursor = self.cursor(subscription)
        thread = threading.Thread(
            target=cursor.run,
            args=(self.poll_interval,),
            name=f"groupwire-relay-{subscription.name}",
            daemon=True,
        )
        self.threads[subscription.name] = thread
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads; an event being retried stays pending for the next start."""
        self.running = False
        for cursor in self.cursors.values():
            cursor.stop.set()
            cursor.wake.set()
        for thread in self.threads.values():
            thread.join(timeout)
        self.threads.clear()
        self.cursors.clear()

    def wake(self, events: Sequence[Event] | None = None) -> None:
        """Called after each commit in this process with its events: deliver without waiting
        for the poll (see :meth:`SubscriptionCursor.offer`)."""
        for cursor in list(self.cursors.values()):
            if events and self.running:
                cursor.offer(events)
            else:
                cursor.wake.set()

    def deliver_pending(self) -> int:
        """Deliver everything pending to every subscriber, in the caller's thread."""
        total = 0
        for subscription in self.registry:
            cursor = self.cursor(subscription)
            while moved := cursor.deliver_batch():
                total += moved
            cursor.flush()
        return total

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every subscriber has caught up with the events committed so far."""
        with self.engine.connect() as conn:
            target = repo.last_sequence(conn)
        if not self.running:
            self.deliver_pending()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.cursor(s).position >= target for s in self.registry):
                return True
            self.wake()
            time.sleep(0.005)
        return False

    def lag(self) -> dict[str, int]:
        """Events each subscriber has yet to pass, by subscriber name."""
        with self.engine.connect() as conn:
            last = repo.last_sequence(conn)
        return {s.name: last - self.cursor(s).position for s in self.registry}


def _first_sequence(events: Sequence[Event]) -> int:
    """The first sequence of a commit's events (without building them, for a unit of work's
    lazily built ``CommittedEvents``)."""
    first = getattr(events, "first_sequence", None)
    return int(first) if first is not None else events[0].sequence


def _types(events: Sequence[Event]) -> set[str]:
    types = getattr(events, "types", None)
    return set(types) if types is not None else {event.type for event in events}
