"""The Redis Streams bus: stream layout, entry encoding, and the outbox relay that publishes.

Layout (every key starts with ``Settings.bus_prefix``):

* ``events:<n>`` for n in 0..P-1: the streams. An event goes to stream
  ``crc32(partition) % P``, so all events of one group (or one customer) share a stream and
  keep their commit order. Entry ids are ``<sequence>-0``: Redis itself refuses an id at or
  below a stream's last one, so an event published twice (a relay that crashed between XADD
  and saving its cursor) is stored once.
* ``published``: the marker, the last sequence published, written by the same Lua script as
  the entries. Redis restarted without persistence has no marker (or an older one, after a
  failover to a lagging replica) while PostgreSQL's cursor says more was published: the relay
  then knows Redis lost entries and republishes from the lowest sequence some subscriber has
  not confirmed (``bus_progress``). See docs/scale-out.md for the argument.
* ``lease:<subscriber>:<n>``, ``workers``, ``stats``: worker coordination (events.worker).

Only one relay publishes at a time: it holds the ``bus_cursor`` row (``SELECT ... FOR UPDATE
SKIP LOCKED``) from reading the events until the cursor is saved, so relays in several
processes never publish the same events concurrently, and a relay that dies mid-way releases
the row with its connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from groupwire.domain.models import Event
from groupwire.events import metrics
from groupwire.events.bus_tables import bus_cursor, bus_progress
from groupwire.events.registry import SubscriberRegistry, Subscription
from groupwire.store import event_log
from groupwire.store import repository as repo
from groupwire.store.engine import WRITE, dialect_insert

if TYPE_CHECKING:
    from groupwire.settings import Settings

log = logging.getLogger("groupwire.bus")

# KEYS[1] marker, KEYS[2..] streams; ARGV[1] expected marker ('' = absent), ARGV[2] new marker,
# then triples (1-based index into KEYS, entry id, payload). Returns entries added, or -1 when
# the marker is not what the relay saw (Redis restarted in between: nothing is written).
_PUBLISH = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return -1 end
elseif current ~= ARGV[1] then
  return -1
end
local added = 0
for i = 3, #ARGV, 3 do
  local ok = redis.pcall('XADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], 'e', ARGV[i + 2])
  if type(ok) ~= 'table' then added = added + 1 end
end
redis.call('SET', KEYS[1], ARGV[2])
return added
"""


class MarkerMoved(RuntimeError):
    """Redis's publish marker changed under the relay (restart or another writer)."""


def is_redis_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "unix://"))


def connect(url: str) -> redis.Redis:
    """A client with timeouts: a blocked read never outlives ``socket_timeout``."""
    return redis.Redis.from_url(
        url,
        socket_timeout=10,
        socket_connect_timeout=2,
        health_check_interval=15,
    )


class RedisBus:
    """Names and encodings shared by the relay and the workers of one bus (one key prefix)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "groupwire:", partitions: int = 8):
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.marker_key = f"{prefix}published"
        self.workers_key = f"{prefix}workers"
        self.stats_key = f"{prefix}stats"
        self.stream_keys = [f"{prefix}events:{n}" for n in range(partitions)]
        self._publish = client.register_script(_PUBLISH)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisBus:
        if not is_redis_url(settings.bus_url):
            raise ValueError(f"not a Redis URL: {settings.bus_url!r}")
        return cls(
            connect(str(settings.bus_url)),
            prefix=settings.bus_prefix,
            partitions=settings.bus_partitions,
        )

    @property
    def name(self) -> str:
        """Keys this bus's rows in ``bus_cursor`` and ``bus_progress``."""
        return self.prefix

    def stream_of(self, partition: str) -> int:
        return zlib.crc32(partition.encode()) % self.partitions

    def lease_key(self, subscriber: str, stream: int) -> str:
        return f"{self.prefix}lease:{subscriber}:{stream}"

    def read_marker(self) -> int | None:
        value = self.client.get(self.marker_key)
        return None if value is None else int(value)

    def publish(self, expected: int | None, new_marker: int, events: list[Event]) -> int:
        """Append ``events`` (sequence order) and set the marker, atomically; returns how many
        entries were new. Raises :class:`MarkerMoved` when the marker is not ``expected``."""
        args: list[Any] = ["" if expected is None else str(expected), str(new_marker)]
        for event in events:
            args += [self.stream_of(event.partition) + 2, f"{event.sequence}-0", encode(event)]
        added = int(self._publish(keys=[self.marker_key, *self.stream_keys], args=args))
        if added < 0:
            raise MarkerMoved("the publish marker changed; Redis may have restarted")
        return added

    def trim(self, below: int) -> None:
        """Drop entries with sequence <= ``below`` (every subscriber has handled them)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.stream_keys:
            pipe.xtrim(key, minid=f"{below + 1}-0")
        pipe.execute()

    def ping(self) -> bool:
        return bool(self.client.ping())

    def cluster_stats(self) -> dict[str, int]:
        """Delivery counts every worker adds to (``<outcome>:<subscriber>`` -> count)."""
        raw = self.client.hgetall(self.stats_key)
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def encode(event: Event) -> str:
    body = event.envelope()
    body["partition"] = event.partition
    return json.dumps(body, separators=(",", ":"), default=str)


def decode(payload: bytes | str) -> Event:
    body = json.loads(payload)
    return Event(
        id=body["id"],
        type=body["type"],
        source=body["source"],
        subject=body["subject"],
        time=datetime.fromisoformat(body["time"]),
        data=body["data"],
        sequence=int(body["sequence"]),
        partition=body["partition"],
        actor=body.get("actor"),
        correlation_id=body.get("correlation_id"),
    )


def confirmed_sequence(conn: Connection, bus: str) -> int:
    """The lowest sequence every known subscriber has confirmed for every stream (0: none)."""
    value = conn.execute(
        select(func.min(bus_progress.c.last_sequence)).where(bus_progress.c.bus == bus)
    ).scalar()
    return int(value or 0)


def registered_progress(
    engine: Engine, bus: str, names: Sequence[str]
) -> dict[tuple[str, int], int]:
    """The saved progress of the subscribers ``names`` on ``bus``: (name, stream) -> sequence."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                bus_progress.c.subscriber, bus_progress.c.stream, bus_progress.c.last_sequence
            ).where(bus_progress.c.bus == bus, bus_progress.c.subscriber.in_(list(names)))
        )
        return {(str(name), int(stream)): int(last) for name, stream, last in rows}


def register_progress(engine: Engine, bus: RedisBus, subscriptions: Sequence[Subscription]) -> None:
    """Record where new subscribers start on ``bus``: a ``bus_progress`` row per stream at
    :meth:`~groupwire.events.registry.Subscription.first_position` (``from_now``: the bus
    cursor, the last event published). Rows that exist are kept (never reset)."""

    def published(conn: Connection) -> int:
        cursor = select(bus_cursor.c.last_sequence).where(bus_cursor.c.bus == bus.name)
        return int(conn.execute(cursor).scalar_one_or_none() or 0)

    now = datetime.now(UTC)
    with engine.connect() as conn:
        starts = {sub.name: sub.first_position(conn, published) for sub in subscriptions}
    rows = [
        {
            "bus": bus.name,
            "subscriber": name,
            "stream": n,
            "last_sequence": start,
            "updated_at": now,
        }
        for name, start in starts.items()
        for n in range(bus.partitions)
    ]
    if rows:
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            conn.execute(dialect_insert(conn, bus_progress).values(rows).on_conflict_do_nothing())


class RedisRelay:
    """Publishes committed events from the outbox to Redis Streams, in sequence order.

    Safe to run in several processes: see the module docstring. Started by ``gw.start()``
    when ``bus_url`` is a Redis URL; wakes on commits in this process and polls for others.
    """

    def __init__(
        self,
        engine: Engine,
        bus: RedisBus,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        trim_interval: float = 5.0,
        subscribers: SubscriberRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.subscribers = subscribers
        self._registered: set[str] = set()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.trim_interval = trim_interval
        self.published = 0
        self.resets = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._trimmed_at = 0.0
        self._row_ready = False

    # --- one step -----------------------------------------------------------------------

    def publish_once(self) -> int | None:
        """Publish up to one batch. Returns the count published, or None when another relay
        holds the cursor right now."""
        self._ensure_row()
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            cursor = conn.execute(
                select(bus_cursor.c.last_sequence)
                .where(bus_cursor.c.bus == self.bus.name)
                .with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if cursor is None:
                return None
            start = cursor = int(cursor)
            marker = self.bus.read_marker()
            if (marker is None and cursor > 0) or (marker is not None and marker < cursor):
                start = min(cursor, self.needed_from(conn))
                self.resets += 1
                metrics.BUS_RESETS.inc()
                log.warning(
                    "Redis holds marker %s but %s events were published: republishing from %s",
                    marker,
                    cursor,
                    start,
                )
            events = event_log.events_between(conn, start, self.batch_size)
            if not events:
                if marker != start:
                    self.bus.publish(marker, start, [])
                if start != cursor:
                    self._save(conn, start)
                return 0
            self.bus.publish(marker, events[-1].sequence, events)
            self._save(conn, events[-1].sequence)
        self.published += len(events)
        metrics.PUBLISHED.inc(len(events))
        return len(events)

    def publish_pending(self, timeout: float = 30.0) -> int:
        """Publish everything committed so far, in the caller's thread (scripts, tests)."""
        total, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            moved = self.publish_once()
            if moved is None:
                time.sleep(0.01)
                continue
            total += moved
            if moved < self.batch_size and self.lag() == 0:
                return total
        raise TimeoutError("the relay could not publish every event in time")

    def trim(self) -> None:
        """Drop stream entries every subscriber has confirmed (:meth:`needed_from`)."""
        with self.engine.connect() as conn:
            below = self.needed_from(conn)
        if below > 0:
            self.bus.trim(below)

    def needed_from(self, conn: Connection) -> int:
        """The sequence above which the streams must keep every entry, and from which the
        relay republishes after Redis lost data: :func:`confirmed_sequence`, lowered to the
        ``start`` of each subscriber of ``subscribers`` that has one (the built-in features)
        and that no worker has registered on this bus yet. The events owed to their endpoints,
        emails and rules thus stay in the streams until the first worker registers them there
        (docs/scale-out.md); with none configured, that start is the end of the log and holds
        nothing back."""
        waiting = self._unregistered(conn)  # before the progress: a row added between counts
        lowest = confirmed_sequence(conn, self.bus.name)
        for subscription in waiting:
            assert subscription.start is not None
            lowest = min(lowest, int(subscription.start(conn)))
        return lowest

    def _unregistered(self, conn: Connection) -> list[Subscription]:
        """This process's subscribers with a ``start`` that have no ``bus_progress`` rows yet
        (rows are never removed by Groupwire: once seen, a subscriber is not asked again)."""
        if self.subscribers is None:
            return []
        candidates = [
            s for s in self.subscribers if s.start is not None and s.name not in self._registered
        ]
        if not candidates:
            return []
        found = set(
            conn.execute(
                select(bus_progress.c.subscriber)
                .where(
                    bus_progress.c.bus == self.bus.name,
                    bus_progress.c.subscriber.in_([s.name for s in candidates]),
                )
                .distinct()
            ).scalars()
        )
        self._registered |= found
        return [s for s in candidates if s.name not in found]

    def lag(self) -> int:
        """Events committed but not yet published."""
        with self.engine.connect() as conn:
            last = repo.last_sequence(conn)
            cursor = conn.execute(
                select(bus_cursor.c.last_sequence).where(bus_cursor.c.bus == self.bus.name)
            ).scalar_one_or_none()
        return last - int(cursor or 0)

    def _save(self, conn: Connection, sequence: int) -> None:
        conn.execute(
            update(bus_cursor)
            .where(bus_cursor.c.bus == self.bus.name)
            .values(last_sequence=sequence, updated_at=datetime.now(UTC))
        )

    def _ensure_row(self) -> None:
        if self._row_ready:
            return
        with self.engine.connect() as conn:
            found = conn.execute(
                select(bus_cursor.c.bus).where(bus_cursor.c.bus == self.bus.name)
            ).first()
        if found is None:
            try:
                with (
                    self.engine.connect().execution_options(**{WRITE: True}) as conn,
                    conn.begin(),
                ):
                    conn.execute(
                        insert(bus_cursor).values(
                            bus=self.bus.name, last_sequence=0, updated_at=datetime.now(UTC)
                        )
                    )
            except IntegrityError:
                pass  # another relay created it first
        self._row_ready = True

    # --- background thread --------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="groupwire-bus-relay", daemon=True)
        self._thread.start()

    def wake(self, _events: Sequence[Event] | None = None) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                moved = self.publish_once()
            except Exception as error:
                log.warning("bus relay failed (%s); retrying", error)
                self._row_ready = False
                self._stop.wait(min(self.poll_interval, 0.2))
                continue
            if moved is None:  # another relay is publishing: look again soon
                self._stop.wait(min(self.poll_interval, 0.05))
            elif moved < self.batch_size:
                self._wake.wait(self.poll_interval)
            if time.monotonic() - self._trimmed_at > self.trim_interval:
                self._trimmed_at = time.monotonic()
                try:
                    self.trim()
                except Exception as error:
                    log.warning("trimming the streams failed: %s", error)


def relay_for(
    engine: Engine, settings: Settings, subscribers: SubscriberRegistry | None = None
) -> RedisRelay | None:
    """The Redis relay publishing ``engine``'s outbox when ``settings.bus_url`` is a Redis URL,
    else None. ``subscribers``: the process's registry, whose subscribers with a ``start``
    the relay keeps entries for until a worker registers them (:meth:`RedisRelay.needed_from`)."""
    if not settings.bus_url:
        return None
    return RedisRelay(
        engine,
        RedisBus.from_settings(settings),
        batch_size=settings.bus_batch_size,
        poll_interval=settings.relay_poll_interval,
        subscribers=subscribers,
    )
