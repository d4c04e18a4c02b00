"""The message queue in the database: claiming due messages and recording attempts.

Claiming takes a lease (``claimed_until``) on each message, so two dispatchers never send
the same message at once, and a dispatcher that dies leaves nothing stuck: its leases run
out and the messages are due again. Recording an outcome writes the attempt, moves the
message along its retry schedule, tracks how long each endpoint has been failing and
disables an endpoint that failed for too long — all in one transaction, together with the
``webhook_endpoint.disabled`` event it records. Pruning deletes the finished messages the
retention period has passed, with their attempts, without touching what is still to be sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, exists, or_, select, update

from groupwire.domain.changes import Context
from groupwire.domain.events import PendingEvent
from groupwire.domain.ids import new_id
from groupwire.domain.models import Event
from groupwire.store import event_log
from groupwire.store.engine import reading
from groupwire.store.unit_of_work import UnitOfWork
from groupwire.webhooks.models import FAILED, PENDING, SUCCEEDED
from groupwire.webhooks.schedule import RetrySchedule
from groupwire.webhooks.store import EP, A, M, lock_event_log_position, writing

ENDPOINT_DISABLED = "webhook_endpoint.disabled"
ACTOR = "groupwire.webhooks"
ATTEMPT = "atmpt"
PRUNE_BATCH = 5000
MAX_PRUNE_BATCH = 10_000
"""Messages one pruning transaction deletes at most (each one is a bound parameter)."""
PRUNE_PAUSE_MAX = 0.5


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed message, ready to be signed and sent."""

    message_id: str
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    attempt: int
    """Number of this attempt among all attempts of the message (1-based)."""
    schedule_step: int
    """Attempts made since the message was (re)sent, before this one."""
    partition: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    delivery: Delivery
    succeeded: bool
    status_code: int | None
    duration_ms: int
    response: str | None
    error: str | None
    attempted_at: datetime


def envelope_body(event: Event) -> bytes:
    """The JSON body of a delivery: the event's CloudEvents envelope."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False).encode()


def _secrets(row: Any, now: datetime) -> tuple[str, ...]:
    previous, expires = row["previous_secret"], row["previous_secret_expires_at"]
    if previous and expires is not None and expires > now:
        return (row["secret"], previous)
    return (row["secret"],)


def claim_due(
    engine: Engine,
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    room: Mapping[str, int],
    default_room: int,
    skip_ids: Iterable[str] = (),
    limit: int = 500,
    wait: bool = True,
) -> list[Delivery]:
    """Claim due messages: at most ``room[endpoint]`` (or ``default_room``) per endpoint.

    On an ordered endpoint only the oldest unfinished message of each partition (group) is
    due: later ones wait while an earlier one is pending or failed.

    Candidates are read without a write lock (an idle poll takes none); the claim itself is
    one conditional UPDATE, so of two dispatchers racing for a message exactly one gets it.
    ``wait=False``: fail at once rather than queue for SQLite's write lock.
    """
    full = [endpoint_id for endpoint_id, free in room.items() if free <= 0]
    skip = set(skip_ids)
    earlier = M.alias("earlier")
    blocked = exists().where(
        earlier.c.endpoint_id == M.c.endpoint_id,
        earlier.c.partition == M.c.partition,
        earlier.c.status.in_((PENDING, FAILED)),
        or_(
            earlier.c.event_sequence < M.c.event_sequence,
            and_(earlier.c.event_sequence == M.c.event_sequence, earlier.c.id < M.c.id),
        ),
    )
    claimable = or_(M.c.claimed_until.is_(None), M.c.claimed_until < now)
    candidates = (
        select(M.c.id, M.c.endpoint_id)
        .join(EP, EP.c.id == M.c.endpoint_id)
        .where(
            M.c.status == PENDING,
            M.c.next_attempt_at <= now,
            claimable,
            EP.c.enabled.is_(True),
            or_(EP.c.ordered.is_(False), ~blocked),
        )
        .order_by(M.c.next_attempt_at)
        .limit(limit)
    )
    if full:
        candidates = candidates.where(M.c.endpoint_id.not_in(full))
    taken: dict[str, int] = {}
    chosen: list[str] = []
    with reading(engine) as conn:
        for message_id, endpoint_id in conn.execute(candidates):
            if message_id in skip or taken.get(endpoint_id, 0) >= room.get(
                endpoint_id, default_room
            ):
                continue
            taken[endpoint_id] = taken.get(endpoint_id, 0) + 1
            chosen.append(message_id)
    if not chosen:
        return []
    details = select(
        M.c.id,
        M.c.endpoint_id,
        M.c.attempts,
        M.c.schedule_step,
        M.c.partition,
        M.c.event_sequence,
        EP.c.url,
        EP.c.secret,
        EP.c.previous_secret,
        EP.c.previous_secret_expires_at,
    ).join(EP, EP.c.id == M.c.endpoint_id)
    with writing(engine, wait=wait) as conn:
        claimed = list(
            conn.execute(
                update(M)
                .where(M.c.id.in_(chosen), M.c.status == PENDING, claimable)
                .values(claimed_until=now + lease, claimed_by=owner)
                .returning(M.c.id)
            ).scalars()
        )
        rows = conn.execute(details.where(M.c.id.in_(claimed))).mappings().all()
        events = event_log.events_at(conn, [row["event_sequence"] for row in rows])
    order = {message_id: n for n, message_id in enumerate(chosen)}
    return [
        Delivery(
            message_id=row["id"],
            endpoint_id=row["endpoint_id"],
            url=row["url"],
            secrets=_secrets(row, now),
            attempt=int(row["attempts"]) + 1,
            schedule_step=int(row["schedule_step"]),
            partition=row["partition"],
            body=envelope_body(events[row["event_sequence"]]),
        )
        for row in sorted(rows, key=lambda row: order[row["id"]])
    ]


def release(engine: Engine, message_ids: list[str], owner: str) -> None:
    """Give back leases of messages that were claimed but not sent (shutting down)."""
    if not message_ids:
        return
    with writing(engine) as conn:
        conn.execute(
            update(M)
            .where(M.c.id.in_(message_ids), M.c.claimed_by == owner)
            .values(claimed_until=None, claimed_by=None)
        )


def prune(
    engine: Engine,
    *,
    before: datetime,
    batch: int = PRUNE_BATCH,
    stop: threading.Event | None = None,
) -> int:
    """Delete the finished messages last changed (``updated_at``) before ``before``, with
    their attempts; returns how many messages were deleted.

    Finished means ``succeeded``, or ``failed`` on an endpoint that is not ordered. Never
    deleted, however old:

    - pending messages: they are still to be sent (a leased one is in flight);
    - failed messages of an ordered endpoint: :func:`claim_due` holds back every later
      message of the partition (those not queued yet too) while an earlier one is pending
      or failed, so deleting a failed one would let the rest through as if it had been
      delivered. It stays until it is resent and succeeds. A succeeded message holds
      nothing back, so on an ordered endpoint it goes like any other.

    A deleted live message no longer stops its event from being queued again: were that event
    handed to the fan-out once more (a subscriber resuming from a checkpoint older than the
    retention period), it would be delivered again (at least once, as always).

    Deletes in transactions of at most ``batch`` messages (attempts first, so nothing relies
    on the foreign key's cascade), each one short; on SQLite, whose write lock a transaction
    holds, it pauses between them as long as the last one took so that other writers (the
    dispatcher recording outcomes) get their turn. On PostgreSQL rows another transaction has
    locked (a resend, another process pruning) are skipped, left for the next time. It stops
    at the first transaction that deletes fewer than ``batch``; setting ``stop`` ends it
    after the current one.
    """
    total = 0
    while True:
        started = time.monotonic()
        removed = prune_batch(engine, before=before, limit=batch)
        total += removed
        if removed < batch:  # all done, or the rest changed or was locked meanwhile
            return total
        pause = 0.0
        if engine.dialect.name == "sqlite":
            pause = min(time.monotonic() - started, PRUNE_PAUSE_MAX)
        if stop is None:
            time.sleep(pause)
        elif stop.wait(pause):
            return total


def prune_batch(engine: Engine, *, before: datetime, limit: int) -> int:
    """One transaction of :func:`prune`: delete at most ``limit`` of the messages it would,
    with their attempts; returns how many messages went.

    Candidates are read without a write lock (finding them may scan many rows); the write
    transaction checks each again by its id, so it holds SQLite's lock only for the deletes.
    """
    ordered = select(EP.c.id).where(EP.c.ordered.is_(True))
    expired = and_(
        M.c.status.in_((SUCCEEDED, FAILED)),
        M.c.updated_at < before,
        ~and_(M.c.status == FAILED, M.c.endpoint_id.in_(ordered)),
    )
    with engine.connect() as conn:
        candidates = list(conn.execute(select(M.c.id).where(expired).limit(limit)).scalars())
    if not candidates:
        return 0
    with writing(engine) as conn:
        ids = list(
            conn.execute(
                select(M.c.id)
                .where(M.c.id.in_(candidates), expired)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if ids:
            conn.execute(delete(A).where(A.c.message_id.in_(ids)))
            conn.execute(delete(M).where(M.c.id.in_(ids)))
    return len(ids)


def record(
    engine: Engine,
    outcomes: list[Outcome],
    *,
    now: datetime,
    schedule: RetrySchedule,
    disable_after: timedelta,
    source: str,
    wait: bool = True,
) -> list[Event]:
    """Write attempts and their consequences in one transaction; returns the events recorded
    (``webhook_endpoint.disabled``), already committed. ``wait=False``: fail at once rather
    than queue for SQLite's write lock."""
    if not outcomes:
        return []
    context = Context(actor=ACTOR)
    with UnitOfWork(engine, source=source, context=context, wait=wait) as uow:
        conn = uow.connection
        ids = [o.delivery.message_id for o in outcomes]
        alive = set(conn.execute(select(M.c.id).where(M.c.id.in_(ids))).scalars())
        outcomes = [o for o in outcomes if o.delivery.message_id in alive]
        if outcomes:
            _write_attempts(conn, outcomes, schedule)
            _track_endpoint_health(uow, outcomes, now=now, disable_after=disable_after)
        return list(uow.commit())


def _write_attempts(conn: Any, outcomes: list[Outcome], schedule: RetrySchedule) -> None:
    attempts = []
    updates = []
    for o in outcomes:
        d = o.delivery
        attempts.append(
            {
                "id": new_id(ATTEMPT),
                "message_id": d.message_id,
                "endpoint_id": d.endpoint_id,
                "attempt": d.attempt,
                "url": d.url,
                "succeeded": o.succeeded,
                "status_code": o.status_code,
                "duration_ms": o.duration_ms,
                "response": o.response,
                "error": o.error,
                "attempted_at": o.attempted_at,
            }
        )
        step = d.schedule_step + 1
        if o.succeeded:
            status, next_at, delivered = SUCCEEDED, None, o.attempted_at
        else:
            delay = schedule.delay_after(step)
            delivered = None
            if delay is None:
                status, next_at = FAILED, None
            else:
                status, next_at = PENDING, o.attempted_at + timedelta(seconds=delay)
        updates.append(
            {
                "b_id": d.message_id,
                "b_status": status,
                "b_attempts": d.attempt,
                "b_step": step,
                "b_next": next_at,
                "b_code": o.status_code,
                "b_error": o.error,
                "b_delivered": delivered,
                "b_now": o.attempted_at,
            }
        )
    conn.execute(A.insert(), attempts)
    conn.execute(
        update(M)
        .where(M.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            schedule_step=bindparam("b_step"),
            next_attempt_at=bindparam("b_next"),
            claimed_until=None,
            claimed_by=None,
            last_status_code=bindparam("b_code"),
            last_error=bindparam("b_error"),
            delivered_at=bindparam("b_delivered"),
            updated_at=bindparam("b_now"),
        ),
        updates,
    )


def _track_endpoint_health(
    uow: UnitOfWork, outcomes: list[Outcome], *, now: datetime, disable_after: timedelta
) -> None:
    conn = uow.connection
    healthy = {o.delivery.endpoint_id for o in outcomes if o.succeeded}
    failing = {o.delivery.endpoint_id for o in outcomes if not o.succeeded} - healthy
    if healthy:
        conn.execute(
            update(EP)
            .where(EP.c.id.in_(sorted(healthy)), EP.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
    if not failing:
        return
    first_failure = {
        o.delivery.endpoint_id: o.attempted_at
        for o in reversed(outcomes)
        if o.delivery.endpoint_id in failing
    }
    for endpoint_id in sorted(failing):
        conn.execute(
            update(EP)
            .where(EP.c.id == endpoint_id, EP.c.failing_since.is_(None))
            .values(failing_since=first_failure[endpoint_id])
        )
    expired = (
        conn.execute(
            select(EP.c.id, EP.c.url, EP.c.failing_since)
            .where(
                EP.c.id.in_(sorted(failing)),
                EP.c.enabled.is_(True),
                EP.c.failing_since <= now - disable_after,
            )
            .order_by(EP.c.id)
            .with_for_update()
        )
        .mappings()
        .all()
    )
    if expired:
        lock_event_log_position(conn)  # the fan-out's cache reads the endpoints again
    for row in expired:
        reason = (
            f"every delivery failed since {row['failing_since'].isoformat()} "
            f"(longer than {_duration(disable_after)})"
        )
        conn.execute(
            update(EP)
            .where(EP.c.id == row["id"])
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        uow.emit(
            PendingEvent(
                ENDPOINT_DISABLED,
                row["id"],
                row["id"],
                {
                    "id": row["id"],
                    "url": row["url"],
                    "failing_since": _iso(row["failing_since"]),
                    "disabled_at": _iso(now),
                    "reason": reason,
                },
            )
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"
