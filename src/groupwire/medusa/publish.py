"""Publishing Groupwire's events into Medusa's own event bus, so that a plain Medusa subscriber
file (``export const config = { event: "customer_group.customer_added" }``) runs on them.

Medusa's Redis event bus (``@medusajs/event-bus-redis``) is a BullMQ queue: ``events-queue``
under the key prefix ``RedisEventBusService`` (its class name, not BullMQ's ``bull``); a job's
name is the event name and its data ``{data, metadata}``. Each event becomes one job, built as
Medusa's own ``emit`` builds one (:func:`medusa_job`):

- options: Medusa's defaults (``priority`` 100, its ``EventPriority.DEFAULT``: a job without a
  priority would overtake every Medusa event waiting; ``removeOnComplete``), with
  ``attempts`` 3 instead of Medusa's 1 (Medusa then retries only the subscribers that failed)
  and ``jobId`` = the Groupwire event id;
- metadata: Medusa's ``source`` / ``object`` / ``action`` (here ``"groupwire"``,
  ``"customer_group"``, ``"customer_added"``), ``created_at`` (the event's time) and
  ``published_at`` (which Medusa's worker turns back into ``Date``s), plus ``event_id``,
  ``sequence``, ``subject`` and, when set, ``actor`` and ``correlation_id``.

At least once and in order: the publisher is a durable Groupwire subscriber (named
``groupwire.medusa.publish``), handed the events in Groupwire's order; its saved progress is the
checkpoint, saved only after BullMQ took the jobs, so a crash neither skips nor floods (it
re-adds at most the events since the last saved checkpoint). A failing add is retried without
end (backoff capped by ``GROUPWIRE_DELIVERY_RETRY_MAX``): dead-lettering an event and moving on
would break the order Medusa's subscribers see. Many pending events go in one ``addBulk`` (a
MULTI/EXEC transaction: all of them or none).

Duplicates after a crash are ignored by BullMQ: a job whose ``jobId`` still exists in Redis is
not added again, and completed jobs are kept ``keep_completed_seconds`` (``removeOnComplete:
{age}``, default one day) instead of being removed at once: that is the window within which a
re-add is harmless. Past it, Medusa's subscribers would run again on a re-added event.

When Medusa's Redis loses its data (a restart without persistence, a restore, a failover), the
publisher notices it by a marker of its own in that Redis and adds the jobs Medusa had not
finished again (:class:`MedusaPublisher`); ``groupwire medusa republish`` does it by hand
(:meth:`MedusaPublisher.republish`).

Which events: ``customer_group.*`` by default (Medusa emits none for groups). Medusa already
emits ``customer.created`` / ``.updated`` / ``.deleted`` from its own workflows: publishing
Groupwire's ``customer.*`` under the same names would hand Medusa's subscribers each one twice,
so they are published only when asked for (``events``).

Where it runs: where Groupwire's subscribers run (the relay of ``gw.start()``, or the Redis
Streams workers). ``groupwire medusa capture --medusa-redis URL`` registers it in the capture
process; elsewhere load this module as a plugin (``GROUPWIRE_PLUGINS=groupwire.medusa.publish``)
with ``GROUPWIRE_MEDUSA_REDIS_URL`` set (the other settings: :class:`PublishSettings`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Annotated, Any

import redis
from bullmq import Queue
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import Engine, select

from groupwire.domain.models import Event
from groupwire.events import checkpoints
from groupwire.events.registry import Subscription
from groupwire.hooks import hookimpl
from groupwire.store import event_log, tables
from groupwire.store import repository as repo

log = logging.getLogger("groupwire.medusa.publish")

SUBSCRIBER = "groupwire.medusa.publish"
DEFAULT_EVENTS: tuple[str, ...] = ("customer_group.*",)
QUEUE_NAME = "events-queue"
QUEUE_PREFIX = "RedisEventBusService"
DEFAULT_PRIORITY = 100
"""Medusa's ``EventPriority.DEFAULT``: what its own events get unless marked otherwise."""
SOURCE = "groupwire"
RETRY_FOREVER = 10**9
"""The subscriber's attempts: an add that fails (Medusa's Redis away) is retried, not skipped."""
MARKER = "groupwire:published"
"""The publisher's marker in Medusa's Redis, under the queue's keys (``{prefix}:{queue}:``):
the sequence of the last event it added, written after the jobs."""
FINISHED = f"{SUBSCRIBER}:medusa-finished"
"""The checkpoint (in Groupwire's store) up to which Medusa finished every job of ours."""
CHUNK = 500
"""Events read from the log, and jobs added, at a time when re-publishing."""

_CONFIRM = """
local marked = redis.call('GET', KEYS[1])
if not marked or tonumber(marked) < tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[2]) > tonumber(marked) then redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""
"""Raise the marker to ARGV[2] if it still holds at least ARGV[1] (else 0: it was lost)."""
_RAISE = """
local marked = redis.call('GET', KEYS[1])
if not marked or tonumber(marked) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


@dataclass(frozen=True)
class PublishOptions:
    """Where and how to publish (see the module docstring for what each default matches)."""

    redis_url: str
    events: tuple[str, ...] = DEFAULT_EVENTS
    queue: str = QUEUE_NAME
    prefix: str = QUEUE_PREFIX
    attempts: int = 3
    priority: int = DEFAULT_PRIORITY
    keep_completed_seconds: int = 86400
    """How long a completed job (and so its ``jobId``) stays in Redis: the dedup window.
    0 removes it at once (Medusa's own default), so a re-add after a crash runs again."""
    check_seconds: float = 1.0
    """How often the publisher looks for a loss of Medusa's Redis and for finished jobs."""

    def job_options(self, event: Event) -> dict[str, Any]:
        keep: bool | dict[str, int] = (
            {"age": self.keep_completed_seconds} if self.keep_completed_seconds > 0 else True
        )
        return {
            "jobId": event.id,
            "attempts": self.attempts,
            "priority": self.priority,
            "removeOnComplete": keep,
        }


def medusa_job(event: Event, options: PublishOptions, published_at: datetime) -> dict[str, Any]:
    """The BullMQ job for ``event``: ``{name, data: {data, metadata}, opts}``."""
    obj, _, action = event.type.partition(".")
    metadata: dict[str, Any] = {
        "source": SOURCE,
        "object": obj,
        "action": action,
        "event_id": event.id,
        "sequence": event.sequence,
        "subject": event.subject,
        "created_at": _iso(event.time),
        "published_at": _iso(published_at),
    }
    if event.actor is not None:
        metadata["actor"] = event.actor
    if event.correlation_id is not None:
        metadata["correlation_id"] = event.correlation_id
    return {
        "name": event.type,
        "data": {"data": event.data, "metadata": metadata},
        "opts": options.job_options(event),
    }


def _iso(moment: datetime) -> str:
    """JavaScript's ``Date.toISOString()`` form, which Medusa's worker parses back."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Republished:
    """What a re-publication did: ``events`` read from Groupwire's log (sequences ``first`` to
    ``last``), of which ``added`` were new to Medusa's Redis and ``present`` were there already
    (waiting, running, or finished and kept): BullMQ leaves those as they are, the job id
    being the event id."""

    events: int = 0
    added: int = 0
    present: int = 0
    first: int | None = None
    last: int | None = None

    def plus(self, chunk: list[Event], present: int) -> Republished:
        return Republished(
            events=self.events + len(chunk),
            added=self.added + len(chunk) - present,
            present=self.present + present,
            first=chunk[0].sequence if self.first is None else self.first,
            last=chunk[-1].sequence,
        )


class MedusaPublisher:
    """Adds events to Medusa's queue; a batch handler for the subscriber registry.

    BullMQ's Python client is asynchronous: the publisher keeps one event loop of its own and
    one queue connection on it, used by whichever thread delivers (one at a time).

    With ``watch`` (the in-process relay: the publisher sees every event in sequence order), it
    also notices when Medusa's Redis loses its jobs and adds them again (docs/medusa.md,
    "Losing Medusa's Redis"):

    - after each ``addBulk`` it raises its *marker* in Medusa's Redis (the string key
      ``{prefix}:{queue}:groupwire:published``) to the sequence of the last event added, on
      condition that the marker still holds what it last wrote; before each batch and every
      ``check_seconds`` it reads the marker back. Gone, or lower than what was written, the
      Redis lost data since (a restart without persistence, a restore, a failover to a replica
      behind): the jobs after the last finished one may be gone with it. Redis applies, saves
      and replicates writes in order, so a marker that survived vouches for every job added
      before it;
    - every ``check_seconds`` it also moves its *finished position* on: the sequence up to which
      every job it added is known to be finished, kept in Groupwire's store (the checkpoint
      ``groupwire.medusa.publish:medusa-finished``). A job counts as finished when its hash has
      ``finishedOn`` (completed or failed for good) or is gone while the marker shows the Redis
      intact (removed on completion); the job states and the marker are read in one MULTI;
    - on a loss it re-adds the events of its subscription after the finished position, up to
      the last one added, logs one warning with their sequences, and writes the marker again.
      Jobs that survived are not doubled (same job ids); jobs Medusa had finished after the
      last check's first unfinished job, and whose hash went with the data, run again.
    """

    def __init__(
        self, options: PublishOptions, engine: Engine | None = None, *, watch: bool = False
    ) -> None:
        if watch and engine is None:
            raise ValueError("watching Medusa's Redis needs Groupwire's store (engine)")
        self.options = options
        self.engine = engine
        self.watch = watch
        self.published = 0
        self.republished = 0
        """Events added again after losses Medusa's Redis had."""
        self.finished: int | None = None
        """Every event of ours at or below it is finished in Medusa (None: not read yet)."""
        self.marked: int | None = None
        """What the marker holds as this publisher last wrote or checked it."""
        self.marker = f"{options.prefix}:{options.queue}:{MARKER}"
        self._types = _log_types(options.events)
        self._loop = asyncio.new_event_loop()
        self._queue: Queue | None = None
        self._redis: redis.Redis | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def handle_events(self, events: list[Event]) -> None:
        """Publish ``events`` (in sequence order) in one ``addBulk``; raises if Redis refused,
        so the subscriber's checkpoint stays before them and they are tried again."""
        if not events:
            return
        now = datetime.now(UTC)
        jobs = [medusa_job(event, self.options, now) for event in events]
        with self._lock:
            self._guarded(lambda: self._publish(jobs, events[-1].sequence))
        self.published += len(jobs)

    def _publish(self, jobs: list[dict[str, Any]], last: int) -> None:
        if self.watch:
            self._verify()  # a loss first: the lost jobs go before these
        self._loop.run_until_complete(self._add(jobs))
        if self.watch:
            self._mark(last)

    def republish(
        self, *, after: int, upto: int | None = None, since: datetime | None = None
    ) -> Republished:
        """Add the jobs of the subscription's events with ``after < sequence <= upto`` (and a
        time from ``since``) again, in order, as :meth:`handle_events` built them."""
        with self._lock:
            return self._republish(after=after, upto=upto, since=since)

    def check(self) -> None:
        """Read the marker (re-publishing after a loss), then move the finished position on.

        The jobs are looked at without holding the publisher's lock (walking thousands of
        finished jobs would hold up the batches): each read of job states carries the marker's,
        so a loss meanwhile is seen, and handled under the lock again."""
        if not self.watch:
            return
        with self._lock:
            if self._loop.is_closed():
                return
            self._guarded(self._verify)
            assert self.finished is not None and self.marked is not None
            finished, upto = self.finished, self.marked
        reached, intact = self._finished_up_to(finished, upto)
        with self._lock:
            if self._loop.is_closed():
                return
            assert self.finished is not None
            if reached > self.finished:
                self._save_finished(reached)
            if not intact:
                self._guarded(self._verify)  # unless a batch has re-added the jobs meanwhile

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            self._forget_queue()  # a fresh connection on the next attempt
            raise

    async def _add(self, jobs: list[dict[str, Any]]) -> None:
        if self._queue is None:
            self._queue = Queue(
                self.options.queue,
                {"connection": self.options.redis_url, "prefix": self.options.prefix},
            )
        await self._queue.addBulk(jobs)

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.options.redis_url, socket_timeout=30, socket_connect_timeout=10
            )
        return self._redis

    def _job_key(self, event_id: str) -> str:
        return f"{self.options.prefix}:{self.options.queue}:{event_id}"

    def _republish(
        self, *, after: int, upto: int | None, since: datetime | None = None
    ) -> Republished:
        assert self.engine is not None
        done = Republished()
        now = datetime.now(UTC)
        for chunk in matching_events(
            self.engine, self.options.events, after=after, upto=upto, since=since
        ):
            pipe = self._client().pipeline(transaction=False)
            for event in chunk:
                pipe.exists(self._job_key(event.id))
            present = sum(int(n) for n in pipe.execute())
            self._loop.run_until_complete(
                self._add([medusa_job(event, self.options, now) for event in chunk])
            )
            done = done.plus(chunk, present)
        return done

    # --- noticing a loss ------------------------------------------------------------------

    def _prepare(self) -> None:
        """The first look, in a new process: the finished position from the store, and the
        marker compared with the last event the subscription's checkpoint has passed."""
        assert self.engine is not None
        stored = _stored_checkpoint(self.engine, FINISHED)
        # the subscription publish_to_medusa registers: its checkpoint, or the end of the log
        mine = Subscription(
            SUBSCRIBER, tuple(self.options.events), self.handle_events, from_now=True
        )
        position = checkpoints.load(self.engine, mine)
        last = last_matching(self.engine, self.options.events, upto=position)
        self.marked = last
        if stored is None:  # the first start: nothing of ours is in Medusa's Redis yet
            self.finished = position
            self._client().eval(_RAISE, 1, self.marker, last)
            checkpoints.save(self.engine, FINISHED, position)
            return
        self.finished = stored
        value = self._client().get(self.marker)
        if value is None or int(value) < last:
            self._recover(value)

    def _verify(self) -> None:
        if self.marked is None:
            self._prepare()
            return
        value = self._client().get(self.marker)
        if value is None or int(value) < self.marked:
            self._recover(value)

    def _mark(self, sequence: int) -> None:
        assert self.marked is not None
        held = self._client().eval(_CONFIRM, 1, self.marker, self.marked, sequence)
        self.marked = max(self.marked, sequence)
        if not held:  # lost between the check and the add: re-add, these jobs among them
            self._recover(self._client().get(self.marker))

    def _recover(self, value: bytes | str | None) -> None:
        assert self.finished is not None and self.marked is not None
        after, upto = self.finished, self.marked
        done = self._republish(after=after, upto=upto)
        self._client().set(self.marker, upto)
        self.republished += done.events
        seen = (
            "its marker is gone"
            if value is None
            else f"its marker says {int(value)}, Groupwire had added up to {upto}"
        )
        if done.events:
            log.warning(
                "Medusa's Redis lost data (%s): re-published the %d events of %s not known to "
                "be finished by Medusa, sequences %d to %d (%d added again, %d still there); "
                "those Medusa had finished since the last check run again",
                seen,
                done.events,
                self.marker.rsplit(":", 2)[0],
                done.first,
                done.last,
                done.added,
                done.present,
            )
        else:
            log.warning(
                "Medusa's Redis lost data (%s); every event Groupwire had added up to "
                "sequence %d was finished by Medusa: nothing to re-publish",
                seen,
                upto,
            )

    def _finished_up_to(self, finished: int, upto: int) -> tuple[int, bool]:
        """How far past ``finished`` (up to ``upto``) every job of ours is finished, oldest
        first, up to the first that is not (one job looked at first: when Medusa is behind,
        that is all); and whether the marker still showed the Redis intact."""
        assert self.engine is not None
        limit = 1
        while finished < upto:
            with self.engine.connect() as conn:
                chunk = event_log.list_events(conn, types=self._types, after=finished, limit=limit)
            ours = [e for e in chunk if e.sequence <= upto and _wanted(self.options.events, e.type)]
            if ours:
                pipe = self._client().pipeline(transaction=True)
                pipe.get(self.marker)
                for event in ours:
                    pipe.hmget(self._job_key(event.id), "timestamp", "finishedOn")
                value, *states = pipe.execute()
                if value is None or int(value) < upto:
                    return finished, False
                for event, (added, done) in zip(ours, states, strict=True):
                    if added is not None and done is None:  # waiting, delayed or running
                        return finished, True
                    finished = event.sequence
            if len(chunk) < limit or not chunk or chunk[-1].sequence >= upto:
                finished = upto
            else:
                finished = chunk[-1].sequence
            limit = CHUNK
        return finished, True

    def _save_finished(self, finished: int) -> None:
        assert self.engine is not None
        if finished != self.finished:
            checkpoints.save(self.engine, FINISHED, finished)
            self.finished = finished

    def _forget_queue(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            try:
                self._loop.run_until_complete(queue.close())
            except Exception as error:
                log.debug("closing the Medusa queue failed: %s", error)

    # A background service of the instance (``gw.workers``): stopped by ``gw.close()``.
    def start(self) -> None:
        """With ``watch``, a thread checking Medusa's Redis every ``check_seconds``; else
        nothing (the subscriber's relay or worker calls :meth:`handle_events`)."""
        if not self.watch or self._watcher is not None:
            return
        self._stopping.clear()
        self._watcher = threading.Thread(
            target=self._watch, name="groupwire-medusa-publish-watch", daemon=True
        )
        self._watcher.start()

    def _watch(self) -> None:
        failing = False
        while not self._stopping.wait(self.options.check_seconds):
            try:
                self.check()
            except Exception as error:
                if not failing:
                    log.warning("checking Medusa's Redis for lost jobs failed: %s", error)
                failing = True
            else:
                failing = False

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
            self._watcher = None
        with self._lock:
            if self._loop.is_closed():
                return
            self._forget_queue()
            self._loop.close()
            if self._redis is not None:
                self._redis.close()
                self._redis = None


def matching_events(
    engine: Engine,
    patterns: tuple[str, ...],
    *,
    after: int,
    upto: int | None = None,
    since: datetime | None = None,
) -> Iterator[list[Event]]:
    """Groupwire's events of ``patterns`` with ``after < sequence <= upto`` (and a time from
    ``since``), in sequence order, in chunks of up to :data:`CHUNK`."""
    types = _log_types(patterns)
    while upto is None or after < upto:
        with engine.connect() as conn:
            chunk = event_log.list_events(conn, types=types, since=since, after=after, limit=CHUNK)
        if not chunk:
            return
        after = chunk[-1].sequence
        wanted = [
            e for e in chunk if (upto is None or e.sequence <= upto) and _wanted(patterns, e.type)
        ]
        if wanted:
            yield wanted
        if len(chunk) < CHUNK:
            return


def last_matching(engine: Engine, patterns: tuple[str, ...], *, upto: int) -> int:
    """The sequence of the last event of ``patterns`` at or below ``upto`` (0: none)."""
    types = _log_types(patterns)
    before = upto + 1
    while before > 1:
        with engine.connect() as conn:
            chunk = event_log.list_events(
                conn, types=types, after=before, limit=CHUNK, descending=True
            )
        for event in chunk:
            if _wanted(patterns, event.type):
                return event.sequence
        if len(chunk) < CHUNK:
            return 0
        before = chunk[-1].sequence
    return 0


def last_sequence(engine: Engine) -> int:
    with engine.connect() as conn:
        return repo.last_sequence(conn)


def _stored_checkpoint(engine: Engine, name: str) -> int | None:
    T = tables.subscriber_checkpoint
    with engine.connect() as conn:
        value = conn.execute(
            select(T.c.last_sequence).where(T.c.subscriber == name)
        ).scalar_one_or_none()
    return None if value is None else int(value)


def _wanted(patterns: tuple[str, ...], event_type: str) -> bool:
    return any(fnmatchcase(event_type, pattern) for pattern in patterns)


def _log_types(patterns: tuple[str, ...]) -> list[str] | None:
    """The patterns as the event log filters them (exact types and ``prefix.*``), or None
    (everything, filtered here) when one has another wildcard."""

    def simple(pattern: str) -> bool:
        body = pattern[:-1] if pattern.endswith("*") else pattern
        return not any(char in body for char in "*?[")

    return list(patterns) if all(simple(p) for p in patterns) else None


def publish_to_medusa(gw: Any, options: PublishOptions) -> MedusaPublisher:
    """Subscribe a publisher to ``gw``'s events (from now on: a store's history is not
    replayed into Medusa) and stop it with ``gw.close()``.

    With the in-process relay it watches Medusa's Redis for lost jobs (:class:`MedusaPublisher`);
    on Groupwire's Redis Streams bus the workers publish events of different streams in
    parallel, not in sequence order, and it does not (``groupwire medusa republish``)."""
    publisher = MedusaPublisher(options, gw.engine, watch=gw.bus_relay is None)
    gw.subscribe(
        list(options.events),
        publisher.handle_events,
        name=SUBSCRIBER,
        from_now=True,
        batch=True,
        max_attempts=RETRY_FOREVER,
    )
    gw.workers.append(publisher)
    return publisher


class PublishSettings(BaseSettings):
    """``GROUPWIRE_MEDUSA_*`` settings of the plugin (and defaults of the CLI options)."""

    model_config = SettingsConfigDict(env_prefix="GROUPWIRE_MEDUSA_", extra="ignore")

    redis_url: str | None = Field(None, description="Medusa's event-bus Redis (redis://...)")
    events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        description="Comma-separated event types or patterns to publish",
    )
    queue: str = Field(QUEUE_NAME, description="Medusa's event-bus queue name")
    queue_prefix: str = Field(QUEUE_PREFIX, description="Medusa's BullMQ key prefix")
    job_attempts: int = Field(3, ge=1, description="BullMQ attempts of each job")
    keep_completed_seconds: int = Field(
        86400, ge=0, description="Seconds completed jobs are kept (the dedup window)"
    )
    check_seconds: float = Field(
        1.0, gt=0, description="Seconds between checks of Medusa's Redis for lost jobs"
    )

    @field_validator("events", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def options(self) -> PublishOptions:
        assert self.redis_url is not None
        return PublishOptions(
            redis_url=self.redis_url,
            events=tuple(self.events) or DEFAULT_EVENTS,
            queue=self.queue,
            prefix=self.queue_prefix,
            attempts=self.job_attempts,
            keep_completed_seconds=self.keep_completed_seconds,
            check_seconds=self.check_seconds,
        )


class MedusaPublishing:
    """A plugin object publishing with explicit options (the CLI's); it goes before the
    module's own environment-configured hook, which then sees the subscriber and adds none."""

    def __init__(self, options: PublishOptions) -> None:
        self.options = options
        self.publisher: MedusaPublisher | None = None

    @hookimpl(tryfirst=True)
    def register_subscribers(self, gw: Any) -> None:
        if not _registered(gw):
            self.publisher = publish_to_medusa(gw, self.options)


@hookimpl
def register_subscribers(gw: Any) -> None:
    """The plugin ``groupwire.medusa.publish``: publishes when ``GROUPWIRE_MEDUSA_REDIS_URL``
    is set, else adds nothing."""
    settings = PublishSettings()
    if settings.redis_url and not _registered(gw):
        publish_to_medusa(gw, settings.options())


def _registered(gw: Any) -> bool:
    return any(s.name == SUBSCRIBER for s in gw.subscribers)
