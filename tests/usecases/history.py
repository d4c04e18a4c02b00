"""Writing membership events straight into the log (synthetic times), and folding the raw log:
the reference the statistics are checked against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update

from groupwire.domain.ids import new_id
from groupwire.store import tables

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"


def append_events(engine: Engine, rows: Sequence[tuple[str, str, str, datetime]]) -> None:
    """Append (type, group_id, customer_id, time) events, in order, as the outbox would."""
    counter = tables.outbox_counter
    with engine.begin() as conn:
        last = conn.execute(
            select(counter.c.last_sequence).where(counter.c.id == 1).with_for_update()
        ).scalar_one()
        values = []
        for offset, (kind, group_id, customer_id, moment) in enumerate(rows, start=1):
            data = {
                "group_id": group_id,
                "customer_id": customer_id,
                "timestamp": moment.isoformat(),
            }
            if kind == REMOVED:
                data["reason"] = "removed"
            values.append(
                {
                    "sequence": last + offset,
                    "id": new_id("evt"),
                    "type": kind,
                    "source": "test",
                    "subject": group_id,
                    "partition": group_id,
                    "time": moment,
                    "data": data,
                    "actor": "test",
                    "correlation_id": None,
                }
            )
        if values:
            conn.execute(tables.event.insert(), values)
            conn.execute(
                update(counter).where(counter.c.id == 1).values(last_sequence=last + len(values))
            )


def fold_log(
    engine: Engine, group_id: str, since: datetime, until: datetime, step: timedelta
) -> tuple[int, list[tuple[datetime, int, int, int]]]:
    """(member count, [(bucket, joins, leaves, members at its end)]) by reading every event."""
    event = tables.event
    with engine.connect() as conn:
        rows = conn.execute(
            select(event.c.type, event.c.time)
            .where(event.c.subject == group_id, event.c.type.in_((ADDED, REMOVED)))
            .order_by(event.c.sequence)
        ).all()
    total = sum(1 if kind == ADDED else -1 for kind, _ in rows)
    per_bucket: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    before = 0
    for kind, moment in rows:
        moment = moment.astimezone(UTC)
        if moment < since:
            before += 1 if kind == ADDED else -1
        elif moment < until:
            index = (moment - since) // step
            per_bucket[since + index * step][0 if kind == ADDED else 1] += 1
    series = []
    members = before
    bucket = since
    while bucket < until:
        joins, leaves = per_bucket.get(bucket, (0, 0))
        members += joins - leaves
        series.append((bucket, joins, leaves, members))
        bucket += step
    return total, series
