"""Audit export: the event log of one group or one customer, as CSV or JSON lines.

A group's trail is every event whose subject is the group (created, updated, members added
and removed, deleted). A customer's trail is every event whose subject is the customer plus
every membership event naming the customer (``data.customer_id``), whichever group it is
about. Rows come in sequence (commit) order with the actor and the correlation id of the
change; the export covers the log as it was when the export began (``sequence <= end``),
read in batches so that any size streams in constant memory.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR)
are prefixed with ``'``; the JSON lines are left exactly as recorded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain import events as ev
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.models import Event
from groupwire.store import event_log
from groupwire.store import repository as repo
from groupwire.store import tables as core

COLUMNS = ("sequence", "time", "type", "subject", "actor", "correlation_id", "data")
FORMATS = ("csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
MEMBERSHIP_TYPES = (ev.CUSTOMER_ADDED, ev.CUSTOMER_REMOVED)
BATCH = 1000
E = core.event
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _group_filter(group_id: str) -> ColumnElement[bool]:
    return E.c.subject == group_id


def _customer_filter(customer_id: str) -> ColumnElement[bool]:
    return or_(
        E.c.subject == customer_id,
        and_(
            E.c.type.in_(MEMBERSHIP_TYPES),
            or_(
                E.c.data["customer_id"].as_string() == customer_id,
                # a bulk change's run names its customers in its spread, as JSON strings
                and_(E.c.span > 1, E.c.spread.contains(json.dumps(customer_id), autoescape=True)),
            ),
        ),
    )


def check_format(format: str) -> str:
    if format not in FORMATS:
        raise InvalidData(f"format must be one of {', '.join(FORMATS)}")
    return format


def _exists(engine: Engine, table: Any, id: str) -> bool:
    with engine.connect() as conn:
        if conn.execute(select(table.c.id).where(table.c.id == id)).first() is not None:
            return True
        return (
            conn.execute(select(E.c.sequence).where(E.c.subject == id).limit(1)).first() is not None
        )


def trail(
    engine: Engine,
    *,
    group_id: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[Event]:
    """The events of a group or a customer (exactly one of the two), in sequence order.

    Raises ``NotFound`` at once (not on first iteration) for an id that never was one.
    """
    if (group_id is None) == (customer_id is None):
        raise InvalidData("export the trail of either a group or a customer")
    if group_id is not None:
        if not _exists(engine, core.customer_group, group_id):
            raise NotFound("customer_group", group_id)
        where = _group_filter(group_id)
    else:
        assert customer_id is not None
        if not _exists(engine, core.customer, customer_id):
            raise NotFound("customer", customer_id)
        where = _customer_filter(customer_id)
    if since is not None and until is not None and since >= until:
        raise InvalidData("since must be before until")
    with engine.connect() as conn:
        end = repo.last_sequence(conn)
    return _batches(engine, where, end, since, until, customer_id)


def _batches(
    engine: Engine,
    where: ColumnElement[bool],
    end: int,
    since: datetime | None,
    until: datetime | None,
    customer_id: str | None,
) -> Iterator[Event]:
    after = 0
    while True:
        query = select(*event_log.COLUMNS).where(where, E.c.sequence > after, E.c.sequence <= end)
        if since is not None:
            query = query.where(E.c.time >= since)
        if until is not None:
            query = query.where(E.c.time < until)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(E.c.sequence).limit(BATCH)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield from _events_of(engine, row, customer_id)
        after = int(rows[-1]["sequence"])
        if len(rows) < BATCH:
            return


def _events_of(engine: Engine, row: RowMapping, customer_id: str | None) -> Iterator[Event]:
    """The events of one row that belong to the trail; a run is read a batch at a time."""
    if customer_id is not None and row["subject"] != customer_id:
        with engine.connect() as conn:
            yield from event_log.run_events_with(conn, row, "customer_id", customer_id)
        return
    position = event_log.first_sequence(row) - 1
    while position < int(row["sequence"]):
        with engine.connect() as conn:
            events = event_log.expand(conn, row, after=position, limit=BATCH)
        yield from events
        position = events[-1].sequence


def row_of(event: Event) -> dict[str, Any]:
    """One export row: the seven columns, ``time`` in ISO 8601 UTC, ``data`` as recorded."""
    return {
        "sequence": event.sequence,
        "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "type": event.type,
        "subject": event.subject,
        "actor": event.actor,
        "correlation_id": event.correlation_id,
        "data": event.data,
    }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(events: Iterator[Event]) -> Iterator[str]:
    """A header line, then one CSV line per event (RFC 4180 quoting, ``\\r\\n`` endings)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield take()
    for event in events:
        row = row_of(event)
        row["data"] = json.dumps(row["data"], ensure_ascii=False, sort_keys=True)
        writer.writerow([_cell(row[column]) for column in COLUMNS])
        yield take()


def jsonl_lines(events: Iterator[Event]) -> Iterator[str]:
    """One JSON object per line."""
    for event in events:
        yield json.dumps(row_of(event), ensure_ascii=False) + "\n"


def export_lines(events: Iterator[Event], format: str) -> Iterator[str]:
    return csv_lines(events) if check_format(format) == "csv" else jsonl_lines(events)
