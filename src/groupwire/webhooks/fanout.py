"""Turning committed events into webhook messages: one per matching endpoint, idempotently.

An endpoint matches an event when one of its ``event_types`` patterns matches the type
(``*``, ``customer_group.*`` or an exact type), when its optional ``group_ids`` filter names
the event's group, and when the event was committed after the endpoint was created. The
messages of one event are written in one transaction; a unique key on (endpoint, event,
origin) makes a redelivered event create nothing new.

Most commits match no endpoint. :class:`EndpointCache` keeps the enabled endpoints with the
event-log position and the routing version they are complete for, so such commits cost no
query at all: a batch is checked against the cache while its last event is not past that
position, or while the batch was committed under that routing version (known for the events
that commits of this process hand to the relay), and the cache is read again (one
statement) otherwise: before the write transaction when the endpoints known last match none
of the batch, else inside it (one read either way). Changes to endpoints by any process are
seen in time: the position and the version are read in the same snapshot as the endpoints;
every event up to the position was committed before that snapshot, so an endpoint created
or changed after the cache was read concerns only events after the cached position; and
every change to an endpoint's routing bumps the version under the outbox counter's lock,
which every event-writing commit reads its version under.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.engine import Connection

from groupwire.domain.ids import new_id
from groupwire.domain.models import Event
from groupwire.events.registry import routing_version_of
from groupwire.store import event_log
from groupwire.store.engine import reading
from groupwire.webhooks.models import LIVE, PENDING
from groupwire.webhooks.store import (
    M,
    enabled_endpoints_as_of,
    insert_ignoring_duplicates,
    writing,
)

MESSAGE = "msg"
REPLAY = "replay"
REPLAY_BATCH = 1000


def event_group_id(event: Event) -> str | None:
    """The customer group an event is about, if any (what a group filter compares)."""
    if event.type.startswith("customer_group."):
        return event.subject
    return None


def matches(endpoint: Any, event: Event) -> bool:
    if not any(fnmatchcase(event.type, pattern) for pattern in endpoint["event_types"]):
        return False
    groups = endpoint["group_ids"]
    return groups is None or event_group_id(event) in groups


def message_row(endpoint_id: str, event: Event, *, origin: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(MESSAGE),
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "event_sequence": event.sequence,
        "event_type": event.type,
        "partition": event.partition,
        "origin": origin,
        "status": PENDING,
        "attempts": 0,
        "schedule_step": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _targets(rows: Sequence[Any], event: Event) -> list[str]:
    return [
        row["id"]
        for row in rows
        if int(row["start_sequence"]) < event.sequence and matches(row, event)
    ]


def fan_out(engine: Engine, event: Event, *, now: datetime) -> list[str]:
    """Queue ``event`` for every enabled endpoint it matches; returns those endpoints' ids.

    Safe to call again for the same event: existing messages are kept, none is added twice.
    """
    return sorted(fan_out_many(engine, [event], now=now))


class EndpointCache:
    """The enabled endpoints as fan-out matches them, valid for events up to a log position.

    Thread-safe; one per process and engine (:class:`groupwire.webhooks.Webhooks` keeps it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: list[dict[str, Any]] = []
        self._position = -1
        self._version: int | None = None

    def cached(self, through: int, version: int | None = None) -> list[dict[str, Any]] | None:
        """The endpoints, if the cache is complete for events up to sequence ``through``, or
        for events committed under routing version ``version``; else None, and then
        :meth:`last` is what it held (possibly out of date)."""
        with self._lock:
            if through <= self._position or (version is not None and version == self._version):
                return self._endpoints
            return None

    def last(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._endpoints

    def read(self, conn: Connection) -> list[dict[str, Any]]:
        """Read the endpoints with their position on ``conn``, keep them if newer."""
        endpoints, position, version = enabled_endpoints_as_of(conn)
        with self._lock:
            if position > self._position or (
                position == self._position and version != self._version
            ):
                self._endpoints, self._position, self._version = endpoints, position, version
        return endpoints


def fan_out_many(
    engine: Engine,
    events: Sequence[Event],
    *,
    now: datetime,
    cache: EndpointCache | None = None,
) -> set[str]:
    """Queue each event for every enabled endpoint it matches, all in one transaction;
    returns the ids of the endpoints that got messages. Idempotent like :func:`fan_out`.

    With a ``cache``, events that match no endpoint open no transaction, and cost no query
    while the cache is complete for them; without one, one read decides the same.
    """
    if not events:
        return set()
    cache = cache or EndpointCache()
    through = max(event.sequence for event in events)
    known = cache.cached(through, routing_version_of(events))
    if known is None and not any(_targets(cache.last(), event) for event in events):
        # Out of date and matching nothing before: most likely still nothing, so read
        # before opening a write transaction (on SQLite that would keep other writers out).
        with reading(engine) as conn:
            known = cache.read(conn)
    if known is not None and not any(_targets(known, event) for event in events):
        return set()
    with writing(engine) as conn:  # (re)read in the transaction: endpoints may have changed
        endpoints = cache.read(conn)
        rows = [
            message_row(endpoint_id, event, origin=LIVE, now=now)
            for event in events
            for endpoint_id in _targets(endpoints, event)
        ]
        insert_ignoring_duplicates(conn, M, rows, ("endpoint_id", "event_id", "origin"))
    return {row["endpoint_id"] for row in rows}


def replay(engine: Engine, endpoint: Mapping[str, Any], since: datetime, *, now: datetime) -> int:
    """Queue a new delivery of every matching event since ``since`` (inclusive) for one
    endpoint, all in one transaction; returns how many were queued."""
    origin = new_id(REPLAY)
    queued = 0
    with writing(engine) as conn:
        after: int | None = None
        while True:
            events = event_log.list_events(conn, since=since, after=after, limit=REPLAY_BATCH)
            if not events:
                break
            after = events[-1].sequence
            rows = [
                message_row(endpoint["id"], event, origin=origin, now=now)
                for event in events
                if matches(endpoint, event)
            ]
            if rows:
                conn.execute(insert(M), rows)
                queued += len(rows)
    return queued
