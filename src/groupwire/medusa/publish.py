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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from bullmq import Queue
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from groupwire.domain.models import Event
from groupwire.hooks import hookimpl

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


class MedusaPublisher:
    """Adds events to Medusa's queue; a batch handler for the subscriber registry.

    BullMQ's Python client is asynchronous: the publisher keeps one event loop of its own and
    one queue connection on it, used by whichever thread delivers (one at a time)."""

    def __init__(self, options: PublishOptions) -> None:
        self.options = options
        self.published = 0
        self._loop = asyncio.new_event_loop()
        self._queue: Queue | None = None
        self._lock = threading.Lock()

    def handle_events(self, events: list[Event]) -> None:
        """Publish ``events`` (in sequence order) in one ``addBulk``; raises if Redis refused,
        so the subscriber's checkpoint stays before them and they are tried again."""
        if not events:
            return
        now = datetime.now(UTC)
        jobs = [medusa_job(event, self.options, now) for event in events]
        with self._lock:
            try:
                self._loop.run_until_complete(self._add(jobs))
            except Exception:
                self._forget_queue()  # a fresh connection on the next attempt
                raise
        self.published += len(jobs)

    async def _add(self, jobs: list[dict[str, Any]]) -> None:
        if self._queue is None:
            self._queue = Queue(
                self.options.queue,
                {"connection": self.options.redis_url, "prefix": self.options.prefix},
            )
        await self._queue.addBulk(jobs)

    def _forget_queue(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            try:
                self._loop.run_until_complete(queue.close())
            except Exception as error:
                log.debug("closing the Medusa queue failed: %s", error)

    # A background service of the instance (``gw.workers``): stopped by ``gw.close()``.
    def start(self) -> None:
        """Nothing to start: the subscriber's relay or worker calls :meth:`handle_events`."""

    def stop(self) -> None:
        with self._lock:
            if self._loop.is_closed():
                return
            self._forget_queue()
            self._loop.close()


def publish_to_medusa(gw: Any, options: PublishOptions) -> MedusaPublisher:
    """Subscribe a publisher to ``gw``'s events (from now on: a store's history is not
    replayed into Medusa) and stop it with ``gw.close()``."""
    publisher = MedusaPublisher(options)
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
