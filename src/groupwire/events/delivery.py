"""Delivering one event to one subscriber: retries with exponential backoff, then dead-letter."""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from groupwire.domain.models import Event
from groupwire.events.registry import Subscription
from groupwire.store import event_log, tables

log = logging.getLogger("groupwire.delivery")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing handler is tried again."""

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    attempts: int
    error: str | None = None


def deliver(
    subscription: Subscription,
    event: Event,
    policy: RetryPolicy,
    stop: threading.Event | None = None,
) -> Outcome:
    """Call the handler until it succeeds or the attempts run out (or ``stop`` is set)."""
    return deliver_many(subscription, [event], policy, stop)


def deliver_many(
    subscription: Subscription,
    events: list[Event],
    policy: RetryPolicy,
    stop: threading.Event | None = None,
) -> Outcome:
    """Like :func:`deliver`, for a list handed over in one call (a batch subscription)."""
    attempts = subscription.max_attempts or policy.max_attempts
    error = ""
    event = events[0]
    for attempt in range(1, attempts + 1):
        try:
            subscription.call_many(events)
            return Outcome(True, attempt)
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            log.warning(
                "subscriber %s failed on event %s%s (attempt %d/%d): %s",
                subscription.name,
                event.id,
                f" and {len(events) - 1} more" if len(events) > 1 else "",
                attempt,
                attempts,
                error,
            )
            if attempt < attempts:
                wait = policy.delay(attempt)
                if stop is not None:
                    if stop.wait(wait):
                        return Outcome(False, attempt, "stopped")
                else:
                    threading.Event().wait(wait)
    return Outcome(False, attempts, error)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    subscriber: str
    event_sequence: int
    event_id: str
    event_type: str
    attempts: int
    error: str
    created_at: datetime
    replayed_at: datetime | None


def record_dead_letter(
    engine: Engine, subscription: Subscription, event: Event, outcome: Outcome
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(tables.dead_letter).values(
                subscriber=subscription.name,
                event_sequence=event.sequence,
                event_id=event.id,
                event_type=event.type,
                attempts=outcome.attempts,
                error=outcome.error or "",
                created_at=datetime.now(UTC),
            )
        )


def list_dead_letters(
    engine: Engine, *, subscriber: str | None = None, include_replayed: bool = False
) -> list[DeadLetter]:
    table = tables.dead_letter
    query = select(table).order_by(table.c.id)
    if subscriber:
        query = query.where(table.c.subscriber == subscriber)
    if not include_replayed:
        query = query.where(table.c.replayed_at.is_(None))
    with engine.connect() as conn:
        return [DeadLetter(**row) for row in conn.execute(query).mappings()]


def replay_dead_letter(
    engine: Engine, letter: DeadLetter, subscription: Subscription, policy: RetryPolicy
) -> bool:
    """Deliver a dead-lettered event again; marks it replayed on success."""
    with engine.connect() as conn:
        event = event_log.event_by_sequence(conn, letter.event_sequence)
    if event is None:  # the log never loses events; a missing one is a broken database
        raise LookupError(f"event {letter.event_id} is not in the event log")
    outcome = deliver(subscription, event, policy)
    table = tables.dead_letter
    with engine.begin() as conn:
        values: dict[str, object] = {"attempts": letter.attempts + outcome.attempts}
        if outcome.delivered:
            values["replayed_at"] = datetime.now(UTC)
        else:
            values["error"] = outcome.error or ""
        conn.execute(update(table).where(table.c.id == letter.id).values(**values))
    return outcome.delivered
