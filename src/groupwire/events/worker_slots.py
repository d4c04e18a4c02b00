"""A worker's unit of work, the slot (one subscriber on one stream), and the state every part of
the worker shares (see :mod:`groupwire.events.worker` for how the parts fit together)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import redis
from sqlalchemy import Engine

from groupwire.domain.models import Event
from groupwire.events.delivery import RetryPolicy
from groupwire.events.redis_bus import RedisBus
from groupwire.events.registry import SubscriberRegistry, Subscription

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


class WorkerState:
    """What the parts of :class:`~groupwire.events.worker.RedisWorker` share, set by its
    ``__init__``: the engine and the bus, the options, the slots and the counts."""

    engine: Engine
    bus: RedisBus
    client: redis.Redis
    registry: SubscriberRegistry
    policy: RetryPolicy
    consumer: str
    lease_ms: int
    claim_idle_ms: int
    batch_size: int
    block_ms: int
    only: set[str] | None
    stopping: threading.Event
    delivered: int
    dead_lettered: int
    retries: int
    acquired: int
    slots: list[Slot]
    _renew: Any
    _release: Any
    _stats: dict[str, int]
