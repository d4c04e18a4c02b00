"""Reading and writing webhook rows: plain functions over a connection, no business rules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from groupwire.store import tables as core
from groupwire.store.engine import NOWAIT, WRITE, dialect_insert
from groupwire.store.unit_of_work import change_routing
from groupwire.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from groupwire.webhooks.tables import webhook_attempt, webhook_endpoint, webhook_message

EP = webhook_endpoint
M = webhook_message
A = webhook_attempt


@contextmanager
def writing(engine: Engine, *, wait: bool = True) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue instead of failing;
    with ``wait=False`` it fails at once if another writer holds SQLite's lock)."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE: True, NOWAIT: not wait})
        with conn.begin():
            yield conn


def insert_ignoring_duplicates(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, silently skipping those whose ``keys`` already exist."""
    if not rows:
        return
    statement = dialect_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, rows)


def lock_event_log_position(conn: Connection) -> int:
    """The last event sequence, locking the outbox counter until this transaction ends, and
    recording that the routing of events changes in this transaction (every change to an
    endpoint's routing calls it: creation, update, deletion, disabling).

    An endpoint created while holding that lock receives exactly the events committed after
    it: no event can commit between reading the position and the endpoint becoming visible.
    And the commits after it carry the new routing version, so the fan-out's cache of the
    endpoints (:class:`groupwire.webhooks.fanout.EndpointCache`) reads them again.
    """
    return change_routing(conn)


def to_endpoint(row: RowMapping, *, secret: str | None = None) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=list(row["event_types"]),
        group_ids=list(row["group_ids"]) if row["group_ids"] is not None else None,
        enabled=bool(row["enabled"]),
        ordered=bool(row["ordered"]),
        failing_since=row["failing_since"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        secret=secret,
    )


def endpoint_row(conn: Connection, endpoint_id: str) -> RowMapping | None:
    return conn.execute(select(EP).where(EP.c.id == endpoint_id)).mappings().first()


def insert_endpoint(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(EP).values(**values))


def update_endpoint(conn: Connection, endpoint_id: str, values: dict[str, Any]) -> int:
    return conn.execute(update(EP).where(EP.c.id == endpoint_id).values(**values)).rowcount


def delete_endpoint(conn: Connection, endpoint_id: str) -> None:
    # Explicit, so the delivery log goes too where foreign keys are not enforced.
    conn.execute(delete(A).where(A.c.endpoint_id == endpoint_id))
    conn.execute(delete(M).where(M.c.endpoint_id == endpoint_id))
    conn.execute(delete(EP).where(EP.c.id == endpoint_id))


def list_endpoints(
    conn: Connection, *, limit: int, offset: int, enabled: bool | None = None
) -> tuple[list[WebhookEndpoint], int]:
    query = select(EP)
    if enabled is not None:
        query = query.where(EP.c.enabled == enabled)
    count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(EP.c.created_at, EP.c.id).limit(limit).offset(offset))
    return [to_endpoint(row) for row in rows.mappings()], int(count)


def enabled_endpoints_as_of(conn: Connection) -> tuple[list[dict[str, Any]], int, int]:
    """What fan-out matches on (id, event types, group ids, start) of every enabled endpoint,
    with the event-log position and the routing version read in the same statement, so from
    the same snapshot.

    Every event up to that position was committed before this snapshot (sequences are taken
    under the counter's lock, held until the commit), so an endpoint created or changed
    after the snapshot was created or changed after those events: the answer is complete
    for every event up to the position, and for every event committed under the same
    routing version (each endpoint change bumps it under that lock).
    """
    counter = core.outbox_counter
    query = (
        select(
            counter.c.last_sequence,
            counter.c.routing_version,
            EP.c.id,
            EP.c.event_types,
            EP.c.group_ids,
            EP.c.start_sequence,
        )
        .select_from(counter.outerjoin(EP, EP.c.enabled.is_(True)))
        .where(counter.c.id == 1)
    )
    position = version = 0
    endpoints: list[dict[str, Any]] = []
    for row in conn.execute(query).mappings():
        position, version = int(row["last_sequence"]), int(row["routing_version"])
        if row["id"] is not None:
            endpoints.append(
                {
                    "id": row["id"],
                    "event_types": list(row["event_types"]),
                    "group_ids": row["group_ids"],
                    "start_sequence": int(row["start_sequence"]),
                }
            )
    return endpoints, position, version


# --- messages and attempts -------------------------------------------------------------------


def to_message(row: RowMapping) -> WebhookMessage:
    return WebhookMessage(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_sequence=int(row["event_sequence"]),
        event_type=row["event_type"],
        partition=row["partition"],
        origin=row["origin"],
        status=row["status"],
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def to_attempt(row: RowMapping) -> WebhookAttempt:
    return WebhookAttempt(
        id=row["id"],
        message_id=row["message_id"],
        endpoint_id=row["endpoint_id"],
        attempt=int(row["attempt"]),
        url=row["url"],
        succeeded=bool(row["succeeded"]),
        status_code=row["status_code"],
        duration_ms=int(row["duration_ms"]),
        response=row["response"],
        error=row["error"],
        attempted_at=row["attempted_at"],
    )


def message_row(conn: Connection, endpoint_id: str, message_id: str) -> RowMapping | None:
    query = select(M).where(M.c.id == message_id, M.c.endpoint_id == endpoint_id)
    return conn.execute(query).mappings().first()


def list_messages(
    conn: Connection,
    endpoint_id: str,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    event_type: str | None = None,
) -> tuple[list[WebhookMessage], int]:
    query = select(M).where(M.c.endpoint_id == endpoint_id)
    if status:
        query = query.where(M.c.status == status)
    if event_type:
        query = query.where(M.c.event_type == event_type)
    count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    query = query.order_by(M.c.created_at.desc(), M.c.event_sequence.desc(), M.c.id.desc())
    rows = conn.execute(query.limit(limit).offset(offset)).mappings()
    return [to_message(row) for row in rows], int(count)


def list_attempts(
    conn: Connection,
    endpoint_id: str,
    *,
    limit: int,
    offset: int,
    message_id: str | None = None,
    succeeded: bool | None = None,
) -> tuple[list[WebhookAttempt], int]:
    query = select(A).where(A.c.endpoint_id == endpoint_id)
    if message_id:
        query = query.where(A.c.message_id == message_id)
    if succeeded is not None:
        query = query.where(A.c.succeeded.is_(succeeded))
    count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    query = query.order_by(A.c.attempted_at.desc(), A.c.id.desc())
    rows = conn.execute(query.limit(limit).offset(offset)).mappings()
    return [to_attempt(row) for row in rows], int(count)


def reset_message(conn: Connection, message_id: str, now: datetime) -> None:
    """Put a message back in the queue, due now, with a fresh retry schedule."""
    conn.execute(
        update(M)
        .where(M.c.id == message_id)
        .values(
            status="pending",
            schedule_step=0,
            next_attempt_at=now,
            claimed_until=None,
            claimed_by=None,
            updated_at=now,
        )
    )
