"""Subscribers: handlers registered for event types or patterns such as ``customer_group.*``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from groupwire.domain.models import Event

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@lru_cache(maxsize=4096)
def _matches(patterns: tuple[str, ...], event_type: str) -> bool:
    """Whether ``event_type`` matches one of the patterns (asked once per delivered event:
    a handful of types and pattern sets, so remembered)."""
    return any(fnmatchcase(event_type, pattern) for pattern in patterns)


# Takes an Event, or a list of events for a batch subscription.
Handler = Callable[[Any], Any]

# Where a subscriber with no progress yet starts: the sequence after which it must see every
# event, read on the connection given (see :attr:`Subscription.start`).
Start = Callable[["Connection"], int]


class EventBatch(list[Event]):
    """The events a batch handler gets: a list, plus what the relay knows of them.

    ``routing_version`` is the routing version (``store.unit_of_work.change_routing``) the
    events were committed under, when the relay knows it (events handed over by commits of
    this process, all under one version); else None. A handler that caches routing
    configuration (webhook endpoints) with the version it read can skip reading it again
    while the version is the same.
    """

    def __init__(self, events: Iterable[Event] = (), routing_version: int | None = None) -> None:
        super().__init__(events)
        self.routing_version = routing_version


def routing_version_of(events: Sequence[Event]) -> int | None:
    """The routing version ``events`` were committed under, when they carry it (a batch
    handler's :class:`EventBatch`, or the events a commit hands to the relay), else None."""
    return getattr(events, "routing_version", None)


@dataclass(frozen=True)
class Subscription:
    """A named handler and the event types it wants. The name keys its progress record."""

    name: str
    patterns: tuple[str, ...]
    handler: Handler
    max_attempts: int | None = None
    from_now: bool = False
    """A subscriber with no checkpoint yet starts after the newest event instead of at the
    first one (e.g. a demo printer that shows only what happens from its first run on)."""
    batch: bool = False
    """The handler takes a list of events (in sequence order) instead of one, so it can do
    one transaction for many: the relay hands it every matching event of a fetched batch."""
    linger: float = 0.0
    """Seconds the in-process relay waits once a commit wakes this subscriber before taking
    its batch, so that the commits of that time reach a batch handler in one call: fewer,
    larger batches for a handler that does not need each event at once."""
    start: Start | None = None
    """Where a subscriber with no progress yet starts, for one whose work is owed from
    positions recorded with its configuration (a webhook endpoint's ``start_sequence``): a
    function of a connection returning the sequence after which it must see every event,
    whenever its first registration comes (:func:`groupwire.events.checkpoints.since_lowest`).
    Without it: at 0, or with ``from_now`` at the end of the log at that registration."""

    def first_position(self, conn: Connection, end: Callable[[Connection], int]) -> int:
        """The progress a brand-new registration of this subscriber records: ``start``'s
        answer, else ``end`` (the end of the log or of the bus) with ``from_now``, else 0."""
        if self.start is not None:
            return int(self.start(conn))
        return int(end(conn)) if self.from_now else 0

    def wants(self, event_type: str) -> bool:
        return _matches(self.patterns, event_type)

    def call(self, event: Event) -> None:
        """Handle one event (a batch handler gets a list of one)."""
        self._run(self.handler([event]) if self.batch else self.handler(event))

    def call_many(self, events: list[Event]) -> None:
        """Handle several events: in one call for a batch handler, else one by one."""
        if self.batch:
            self._run(self.handler(events))
        else:
            for event in events:
                self._run(self.handler(event))

    @staticmethod
    def _run(result: Any) -> None:
        if inspect.isawaitable(result):
            asyncio.run(_await(result))


async def _await(awaitable: Any) -> Any:
    return await awaitable


class SubscriberRegistry:
    """The subscriptions of one Groupwire instance, by name."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Subscription] = {}
        self.listeners: list[Callable[[Subscription], None]] = []

    def add(
        self,
        patterns: str | Iterable[str],
        handler: Handler,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        from_now: bool = False,
        batch: bool = False,
        linger: float = 0.0,
        start: Start | None = None,
    ) -> Subscription:
        patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        if not patterns:
            raise ValueError("a subscriber needs at least one event type or pattern")
        name = name or f"{handler.__module__}.{handler.__qualname__}"
        if name in self._subscriptions:
            raise ValueError(f"a subscriber named {name!r} is already registered")
        if linger < 0:
            raise ValueError("linger must be 0 or more seconds")
        if start is not None and from_now:
            raise ValueError("a subscriber starts either from_now or at its start, not both")
        subscription = Subscription(
            name, patterns, handler, max_attempts, from_now, batch, linger, start
        )
        self._subscriptions[name] = subscription
        for listener in list(self.listeners):
            listener(subscription)
        return subscription

    def subscriber(
        self,
        *patterns: str,
        name: str | None = None,
        max_attempts: int | None = None,
        from_now: bool = False,
        batch: bool = False,
        linger: float = 0.0,
        start: Start | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@registry.subscriber("customer_group.customer_added")``."""

        def register(handler: Handler) -> Handler:
            self.add(
                patterns,
                handler,
                name=name,
                max_attempts=max_attempts,
                from_now=from_now,
                batch=batch,
                linger=linger,
                start=start,
            )
            return handler

        return register

    def get(self, name: str) -> Subscription:
        return self._subscriptions[name]

    def __iter__(self) -> Any:
        return iter(list(self._subscriptions.values()))

    def __len__(self) -> int:
        return len(self._subscriptions)
