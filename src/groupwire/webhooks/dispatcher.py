"""The dispatcher: sends due messages, signed, with per-endpoint concurrency limits.

It runs an asyncio loop (in a thread of its own for :meth:`Dispatcher.start`, or in the
caller's thread for :meth:`Dispatcher.deliver_due`). Each endpoint has a lane with
``endpoint_concurrency`` slots and room for as many messages again in a small queue: a
hanging or slow endpoint fills its own lane and never the others', so healthy endpoints are
served at their own pace. Outcomes are written in batches by a recorder task.

Claiming and recording are short set-based transactions run on the loop itself: run in a
worker thread, they competed with the loop for the GIL and every request waited for it
several times over (a third fewer deliveries/s, three times the p99 latency, measured). Only
when SQLite's write lock is held by another writer (a long bulk change, say) does the call
move to a worker thread to wait for it, so the loop never stalls on a lock.

Now and then (``prune_interval``, and a minute after it starts) the background dispatcher
prunes the delivery log of what the retention period has passed. The deletes run in a
worker thread, one short transaction at a time, never on the loop: sending goes on
meanwhile, and a failed pruning is logged and tried again at the next interval.

Every request goes to an address the SSRF guard checked (the host name stays in ``Host`` and
the TLS server name), with redirects not followed, a total time limit, and a cap on how
much of the response is read.

HTTP goes through aiohttp: on a fast receiver its client sends several times more requests
per second per core than httpx's (``benchmarks/webhook_delivery.py`` measures both), and a
dispatcher is mostly HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from groupwire.domain.models import Event
from groupwire.store.engine import is_locked
from groupwire.webhooks.clock import Clock
from groupwire.webhooks.queue import Delivery, Outcome, claim_due, prune, record, release
from groupwire.webhooks.schedule import RetrySchedule
from groupwire.webhooks.signing import Signer
from groupwire.webhooks.ssrf import Target, UnsafeUrl, resolve_target_async

log = logging.getLogger("groupwire.webhooks")

USER_AGENT = "groupwire-webhooks/0.1"
DNS_CACHE_SECONDS = 30.0
RECORD_BATCH = 200
RECORD_DELAY = 0.025
# Messages a lane holds (sending and queued) per slot: enough to keep a fast endpoint busy
# between claims and to spread a claim's cost over many messages (10 rather than 4 took a
# fast endpoint from ~2,500 to ~3,100 deliveries/s on SQLite, ~1,200 to ~1,550 on
# PostgreSQL), few enough that a queued message is sent before its lease ends (the lease
# grows with it: 225 s with the default 15 s timeout, the wait after a dispatcher crash).
PREFETCH = 10
STOP_GRACE = 2.0
# Not at once: a starting process has a backlog to catch up on first.
FIRST_PRUNE_DELAY = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class DeliveryConfig:
    """How the dispatcher sends (from the ``webhooks_*`` settings)."""

    timeout: float = 15.0
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    disable_after: timedelta = timedelta(days=5)
    endpoint_concurrency: int = 10
    max_in_flight: int = 200
    poll_interval: float = 1.0
    allow_private: bool = False
    allow_http: bool = False
    response_excerpt: int = 4096
    response_max_bytes: int = 65536
    source: str = "groupwire"
    retention: timedelta = timedelta(days=30)
    """How long a finished message is kept after its last change (see :func:`prune`)."""
    prune_interval: float = 3600.0
    """Seconds between two prunings by the background dispatcher."""

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts: long enough for a queued message's turn and its attempt."""
        return timedelta(seconds=(PREFETCH + 1) * self.timeout + 60)


@dataclass
class DispatchStats:
    """Counters for benchmarks and monitoring (seconds are summed over all attempts)."""

    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    signing_seconds: float = 0.0
    sending_seconds: float = 0.0
    recording_seconds: float = 0.0
    claiming_seconds: float = 0.0


@dataclass
class _Lane:
    queue: deque[Delivery] = field(default_factory=deque)
    active: int = 0
    backlog: bool = False
    """The last claim filled the lane's room: more messages are probably due."""


class _Session:
    """One asyncio loop's worth of dispatching state."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self.config = dispatcher.config
        self.lanes: dict[str, _Lane] = {}
        self.claimed: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.outcomes: list[Outcome] = []
        self.outcome_ready = asyncio.Event()
        self.recorded = asyncio.Event()
        self.wake = asyncio.Event()
        self.clients: dict[
            tuple[str, str, str, int], tuple[aiohttp.ClientSession, _CheckedResolver]
        ] = {}
        self.dns: dict[tuple[str, bool, bool], tuple[float, Target]] = {}
        self.signers: dict[tuple[str, ...], Signer] = {}

    # --- claiming ----------------------------------------------------------------------

    def outstanding(self) -> int:
        return sum(len(lane.queue) + lane.active for lane in self.lanes.values())

    async def fill(self) -> int:
        """Claim what the lanes have room for and start sending; returns how many."""
        concurrency = self.config.endpoint_concurrency
        budget = PREFETCH * self.config.max_in_flight - self.outstanding()
        if budget <= 0:
            return 0
        room = {
            endpoint_id: PREFETCH * concurrency - len(lane.queue) - lane.active
            for endpoint_id, lane in self.lanes.items()
        }
        started = time.perf_counter()
        deliveries = await _database(
            claim_due,
            self.d.engine,
            now=self.d.clock.now(),
            owner=self.d.owner,
            lease=self.config.lease,
            room=room,
            default_room=PREFETCH * concurrency,
            skip_ids=set(self.claimed),
            limit=min(
                budget,
                max(sum(free for free in room.values() if free > 0), 0)
                + 4 * PREFETCH * concurrency,
            ),
        )
        self.d.stats.claiming_seconds += time.perf_counter() - started
        taken: dict[str, int] = {}
        for delivery in deliveries:
            self.claimed.add(delivery.message_id)
            self.lanes.setdefault(delivery.endpoint_id, _Lane()).queue.append(delivery)
            taken[delivery.endpoint_id] = taken.get(delivery.endpoint_id, 0) + 1
        for endpoint_id, lane in self.lanes.items():
            lane.backlog = taken.get(endpoint_id, 0) >= room.get(
                endpoint_id, PREFETCH * concurrency
            )
        for endpoint_id in taken:
            self.pump(endpoint_id)
        return len(deliveries)

    def pump(self, endpoint_id: str) -> None:
        lane = self.lanes[endpoint_id]
        while lane.queue and lane.active < self.config.endpoint_concurrency:
            delivery = lane.queue.popleft()
            lane.active += 1
            task = asyncio.create_task(self.attempt(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # --- sending -----------------------------------------------------------------------

    async def attempt(self, delivery: Delivery) -> None:
        try:
            outcome = await self.send(delivery)
        finally:
            lane = self.lanes[delivery.endpoint_id]
            lane.active -= 1
        self.outcomes.append(outcome)
        self.outcome_ready.set()
        self.pump(delivery.endpoint_id)
        if lane.backlog and len(lane.queue) < self.config.endpoint_concurrency:
            lane.backlog = False
            self.wake.set()  # running low with more waiting: claim before the lane runs dry
        if not lane.queue and not lane.active:
            self.lanes.pop(delivery.endpoint_id, None)

    async def target(self, url: str) -> Target:
        """The checked target of a URL, cached briefly: every address a cached answer
        holds was checked, so a DNS change inside the cache time cannot bypass the guard."""
        key = (url, self.config.allow_private, self.config.allow_http)
        cached = self.dns.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        target = await resolve_target_async(
            url, allow_private=self.config.allow_private, allow_http=self.config.allow_http
        )
        self.dns[key] = (time.monotonic() + DNS_CACHE_SECONDS, target)
        return target

    def client(self, endpoint_id: str, target: Target) -> aiohttp.ClientSession:
        """One connection pool per endpoint and origin, sized to the endpoint's lane and never
        shared, so one endpoint's connections cannot be taken by another's. Its resolver
        answers only with the addresses the SSRF guard checked last."""
        key = (endpoint_id, target.scheme, target.host, target.port)
        found = self.clients.get(key)
        if found is None:
            resolver = _CheckedResolver()
            limit = max(self.config.endpoint_concurrency, 1)
            client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=limit, limit_per_host=limit, resolver=resolver, use_dns_cache=False
                ),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                # Bodies are read raw and capped: ask for no compression.
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
                trust_env=False,
            )
            found = self.clients[key] = (client, resolver)
        client, resolver = found
        resolver.target = target
        return client

    def signer(self, secrets: tuple[str, ...]) -> Signer:
        signer = self.signers.get(secrets)
        if signer is None:
            signer = self.signers[secrets] = Signer(secrets)
        return signer

    async def send(self, delivery: Delivery) -> Outcome:
        attempted_at = self.d.clock.now()
        started = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        stats = self.d.stats
        try:
            async with asyncio.timeout(self.config.timeout):
                target = await self.target(delivery.url)
                sign_started = time.perf_counter()
                headers = self.signer(delivery.secrets).headers(
                    delivery.message_id, int(time.time()), delivery.body
                )
                stats.signing_seconds += time.perf_counter() - sign_started
                headers["content-type"] = "application/json"
                headers["user-agent"] = USER_AGENT
                request_started = time.perf_counter()
                async with self.client(delivery.endpoint_id, target).post(
                    delivery.url,
                    data=delivery.body,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    excerpt = await self.read_excerpt(response)
                stats.sending_seconds += time.perf_counter() - request_started
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                if 300 <= status < 400:
                    error += " (redirects are not followed)"
        except UnsafeUrl as refused:
            error = refused.message
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            error = f"timed out after {self.config.timeout:g} s"
        except aiohttp.ClientError as failure:
            error = (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
        except Exception as failure:  # a delivery must never take the dispatcher down
            log.exception("webhook delivery of %s failed unexpectedly", delivery.message_id)
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = int((time.perf_counter() - started) * 1000)
        succeeded = error is None
        stats.attempts += 1
        if succeeded:
            stats.succeeded += 1
        else:
            stats.failed += 1
        return Outcome(delivery, succeeded, status, duration_ms, excerpt, error, attempted_at)

    async def read_excerpt(self, response: aiohttp.ClientResponse) -> str:
        cap = self.config.response_max_bytes
        received = bytearray()
        while len(received) < cap:
            chunk = await response.content.read(cap - len(received))
            if not chunk:
                break
            received += chunk
        return bytes(received[: self.config.response_excerpt]).decode("utf-8", "replace")

    # --- recording ---------------------------------------------------------------------

    async def flush(self) -> None:
        while self.outcomes:
            batch, self.outcomes = self.outcomes[:RECORD_BATCH], self.outcomes[RECORD_BATCH:]
            started = time.perf_counter()
            try:
                events = await _database(
                    record,
                    self.d.engine,
                    batch,
                    now=self.d.clock.now(),
                    schedule=self.config.schedule,
                    disable_after=self.config.disable_after,
                    source=self.config.source,
                )
            except Exception:
                # The leases run out and the messages are sent again: at least once.
                log.exception("recording %d webhook attempts failed", len(batch))
                events = []
            self.d.stats.recording_seconds += time.perf_counter() - started
            for outcome in batch:
                self.claimed.discard(outcome.delivery.message_id)
            if events:
                self.d.notify(events)
        self.recorded.set()
        self.wake.set()

    async def recorder(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait_any(self.outcome_ready, stop, timeout=None)
            self.outcome_ready.clear()
            await asyncio.sleep(RECORD_DELAY)  # let a few more outcomes join the batch
            await self.flush()

    # --- shutting down -----------------------------------------------------------------

    async def close(self) -> None:
        unsent = [d.message_id for lane in self.lanes.values() for d in lane.queue]
        for lane in self.lanes.values():
            lane.queue.clear()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        interrupted = [
            message_id
            for message_id in self.claimed
            if message_id not in {o.delivery.message_id for o in self.outcomes}
        ]
        await self.flush()
        try:
            await asyncio.to_thread(
                release, self.d.engine, sorted(set(unsent) | set(interrupted)), self.d.owner
            )
        except Exception:
            log.exception("releasing webhook leases failed; they will expire")
        for client, _ in self.clients.values():
            await client.close()


class _CheckedResolver(AbstractResolver):
    """Resolves an endpoint's host name to the addresses the SSRF guard checked, nothing
    else: connections go to a checked address (each is tried in turn), while the ``Host``
    header and TLS keep the host name. An IP-literal URL is never resolved; the guard
    checked it before the request."""

    target: Target | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self.target  # the pool's one origin: whatever is asked, answer its addresses
        if target is None:
            raise OSError(f"{host} was not checked by the SSRF guard")
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in target.addresses
        ]

    async def close(self) -> None:
        pass


async def _database(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a claim or record on the loop without queueing for SQLite's write lock; if another
    writer holds it, wait for it in a worker thread instead."""
    try:
        return call(*args, wait=False, **kwargs)
    except OperationalError as error:
        if not is_locked(error):
            raise
    return await asyncio.to_thread(functools.partial(call, *args, wait=True, **kwargs))


async def _wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Dispatcher:
    """Sends due webhook messages, in a background thread or on demand."""

    def __init__(
        self,
        engine: Engine,
        config: DeliveryConfig,
        clock: Clock,
        *,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.on_events = on_events
        self.owner = f"dispatcher-{uuid.uuid4().hex[:12]}"
        self.stats = DispatchStats()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: _Session | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def notify(self, events: list[Event]) -> None:
        if self.on_events is not None:
            try:
                self.on_events(events)
            except Exception:
                log.exception("commit listener failed for webhook events")

    # --- background --------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._ready.clear()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run_forever()),
            name="groupwire-webhooks",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if thread is None:
            return
        self._stopping.set()  # a pruning under way ends after its current transaction
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    def wake(self) -> None:
        """New messages were queued: look for due ones now rather than at the next poll."""
        loop, session = self._loop, self._session
        if loop is None or session is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(session.wake.set)

    async def _run_forever(self) -> None:
        session = _Session(self)
        stop = asyncio.Event()
        self._loop, self._session, self._stop = asyncio.get_running_loop(), session, stop
        self._ready.set()
        recorder = asyncio.create_task(session.recorder(stop))
        pruner = asyncio.create_task(self._prune_now_and_then(stop))
        try:
            while not stop.is_set():
                session.wake.clear()
                try:
                    await session.fill()
                except Exception:
                    log.exception("claiming webhook messages failed; retrying")
                await _wait_any(session.wake, stop, timeout=self.config.poll_interval)
        finally:
            self._session = None
            for task in (recorder, pruner):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await session.close()
            self._loop = None

    async def _prune_now_and_then(self, stop: asyncio.Event) -> None:
        interval = self.config.prune_interval
        delay = min(FIRST_PRUNE_DELAY, interval)
        while True:
            await _wait_any(stop, timeout=delay)
            if stop.is_set():
                return
            delay = interval
            before = self.clock.now() - self.config.retention
            try:
                # In a worker thread: the deletes must not hold up the loop. stop() sets
                # _stopping, which ends a long pruning after its current transaction.
                removed = await asyncio.to_thread(
                    prune, self.engine, before=before, stop=self._stopping
                )
            except Exception:
                log.exception("pruning the webhook delivery log failed; trying again later")
                continue
            if removed:
                log.info("pruned %d finished webhook messages from the delivery log", removed)

    # --- on demand ---------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Send every message due now, in the caller's thread, and wait for the outcomes to be
        recorded; repeats while sending made more messages due (retries with no delay,
        ordered successors). Returns the number of attempts made."""
        return asyncio.run(self._run_until_idle())

    async def _run_until_idle(self) -> int:
        session = _Session(self)
        attempts = 0
        try:
            while True:
                started = await session.fill()
                attempts += started
                if not started and not session.tasks:
                    break
                while session.tasks:
                    await asyncio.wait(set(session.tasks))
                await session.flush()
        finally:
            await session.close()
        return attempts
