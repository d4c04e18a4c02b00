"""Maintaining the membership rollup from the event log, exactly and idempotently.

The ``groupwire.analytics`` subscriber does not trust the event it is handed to be the next
one: for the event's group it folds every membership event after the group's
``last_sequence`` (reading them from the log, in sequence order, in batches) and moves
``last_sequence`` forward in the same transaction as the counts. A redelivered or reordered
event therefore finds its effect already applied, and a subscriber that starts late catches
up on a group's whole history the first time it sees that group. Sequences are handed out in
commit order without gaps, so "everything after my position" never skips a late commit.

:func:`rebuild` recomputes both tables from the whole log in one transaction (the backfill).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Select, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from groupwire.analytics.tables import group_stats as S
from groupwire.analytics.tables import group_stats_hourly as H
from groupwire.domain import events as ev
from groupwire.domain.models import Event
from groupwire.store import tables as core
from groupwire.webhooks.store import writing

SUBSCRIBER = "groupwire.analytics"
MEMBERSHIP_TYPES = (ev.CUSTOMER_ADDED, ev.CUSTOMER_REMOVED)
BATCH = 5000
E = core.event

Counts = dict[datetime, list[int]]  # hour -> [joins, leaves]


def hour_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class _Statements:
    """The statements the subscriber runs on every membership commit, built once per dialect
    so that SQLAlchemy reuses their cache keys and compiled forms."""

    events: Select[Any]
    events_limited: Select[Any]
    create_state: Any
    lock_state: Select[Any]
    save_state: Any
    upsert_hours: Any


@lru_cache(maxsize=4)
def _statements(dialect_name: str) -> _Statements:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    events = (
        select(E.c.sequence, E.c.type, E.c.time, E.c.span)
        .where(
            E.c.subject == bindparam("group_id"),
            E.c.sequence > bindparam("after"),
            E.c.type.in_(MEMBERSHIP_TYPES),
        )
        .order_by(E.c.sequence)
    )
    lock_state = select(S.c.member_count, S.c.last_sequence).where(
        S.c.group_id == bindparam("group_id")
    )
    if dialect_name == "postgresql":
        lock_state = lock_state.with_for_update()
    upsert = dialect.insert(H)
    upsert = upsert.on_conflict_do_update(
        index_elements=[H.c.group_id, H.c.bucket],
        set_={
            "joins": H.c.joins + upsert.excluded.joins,
            "leaves": H.c.leaves + upsert.excluded.leaves,
        },
    )
    return _Statements(
        events=events,
        events_limited=events.limit(bindparam("limit")),
        create_state=dialect.insert(S)
        .values(
            group_id=bindparam("gid"),
            member_count=0,
            last_sequence=0,
            updated_at=bindparam("now", type_=S.c.updated_at.type),
        )
        .on_conflict_do_nothing(index_elements=[S.c.group_id]),
        lock_state=lock_state,
        save_state=update(S)
        .where(S.c.group_id == bindparam("gid"))
        .values(
            member_count=bindparam("members"),
            last_sequence=bindparam("position"),
            updated_at=bindparam("now", type_=S.c.updated_at.type),
        ),
        upsert_hours=upsert,
    )


def _sql(conn: Connection) -> _Statements:
    return _statements(conn.dialect.name)


def membership_events(
    conn: Connection, group_id: str, *, after: int, limit: int | None
) -> list[tuple[int, str, datetime, int]]:
    """(sequence, type, time, count) of the group's membership event rows after ``after``:
    ``count`` events up to ``sequence`` (a bulk change's run is one row of many events)."""
    sql = _sql(conn)
    params: dict[str, Any] = {"group_id": group_id, "after": after}
    query = sql.events
    if limit is not None:
        query, params["limit"] = sql.events_limited, limit
    return [
        (int(s), t, time, min(int(span), int(s) - after))
        for s, t, time, span in conn.execute(query, params).all()
    ]


def fold(rows: Iterable[tuple[int, str, datetime, int]]) -> tuple[Counts, int]:
    """Joins and leaves per hour, and the net change of the member count."""
    counts: Counts = defaultdict(lambda: [0, 0])
    net = 0
    for _sequence, kind, moment, count in rows:
        cell = counts[hour_of(moment)]
        if kind == ev.CUSTOMER_ADDED:
            cell[0] += count
            net += count
        else:
            cell[1] += count
            net -= count
    return counts, net


def _upsert_hours(conn: Connection, group_id: str, counts: Counts) -> None:
    if not counts:
        return
    conn.execute(
        _sql(conn).upsert_hours,
        [
            {"group_id": group_id, "bucket": hour, "joins": j, "leaves": lv}
            for hour, (j, lv) in sorted(counts.items())
        ],
    )


def _lock_state(conn: Connection, group_id: str) -> tuple[int, int]:
    """The group's (member_count, last_sequence), row-locked for this transaction."""
    sql = _sql(conn)
    row = conn.execute(sql.lock_state, {"group_id": group_id}).first()
    if row is None:  # the group's first membership events: its state is created first
        conn.execute(sql.create_state, {"gid": group_id, "now": datetime.now(UTC)})
        row = conn.execute(sql.lock_state, {"group_id": group_id}).one()
    members, last = row
    return int(members), int(last)


def catch_up(engine: Engine, group_id: str, *, until: int | None = None) -> int:
    """Fold the group's pending membership events into the rollup, ``BATCH`` per transaction,
    until its position reaches ``until`` (default: the end of the log); returns the position."""
    while True:
        with writing(engine) as conn:
            members, last = _lock_state(conn, group_id)
            if until is not None and last >= until:
                return last
            rows = membership_events(conn, group_id, after=last, limit=BATCH)
            if not rows:
                if until is not None and until > last:
                    # nothing of this group up to ``until``: remember we looked that far
                    _save_state(conn, group_id, members, until)
                    return until
                return last
            counts, net = fold(rows)
            _upsert_hours(conn, group_id, counts)
            position = rows[-1][0]
            _save_state(conn, group_id, members + net, position)
        if len(rows) < BATCH and (until is None or position >= until):
            return position


def _save_state(conn: Connection, group_id: str, members: int, position: int) -> None:
    conn.execute(
        _sql(conn).save_state,
        {"gid": group_id, "members": members, "position": position, "now": datetime.now(UTC)},
    )


class Rollup:
    """The ``groupwire.analytics`` subscriber, with an in-memory lower bound of each group's
    position so that the events of a bulk change cost one catch-up, not one query each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    def handle_events(self, events: Sequence[Event]) -> None:
        """Catch each group of the batch up to its last event in the batch: one catch-up per
        group, not per event."""
        until: dict[str, int] = {}
        for event in events:
            if event.type in MEMBERSHIP_TYPES:
                until[event.subject] = max(event.sequence, until.get(event.subject, 0))
        for group_id, sequence in until.items():
            with self._lock:
                if self._known.get(group_id, 0) >= sequence:
                    continue
            position = catch_up(self.engine, group_id, until=sequence)
            with self._lock:
                if position > self._known.get(group_id, 0):
                    self._known[group_id] = position

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


def rebuild(engine: Engine, *, batch: int = 50_000) -> int:
    """Recompute the rollup of every group from the whole event log in one transaction (the
    backfill); returns the membership events folded. The subscriber waits meanwhile."""
    counts: dict[str, Counts] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    members: dict[str, int] = defaultdict(int)
    last: dict[str, int] = {}
    folded = 0
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"LOCK TABLE {S.name}, {H.name} IN EXCLUSIVE MODE"))
        end = int(
            conn.execute(
                select(core.outbox_counter.c.last_sequence).where(core.outbox_counter.c.id == 1)
            ).scalar_one()
        )
        for group_id, kind, moment, sequence, count in _all_membership_events(conn, end, batch):
            cell = counts[group_id][hour_of(moment)]
            if kind == ev.CUSTOMER_ADDED:
                cell[0] += count
                members[group_id] += count
            else:
                cell[1] += count
                members[group_id] -= count
            last[group_id] = sequence
            folded += count
        conn.execute(delete(H))
        conn.execute(delete(S))
        now = datetime.now(UTC)
        rows = [
            {"group_id": g, "bucket": hour, "joins": j, "leaves": lv}
            for g, hours in counts.items()
            for hour, (j, lv) in hours.items()
        ]
        for start in range(0, len(rows), batch):
            conn.execute(insert(H), rows[start : start + batch])
        states = [
            {"group_id": g, "member_count": members[g], "last_sequence": end, "updated_at": now}
            for g in last
        ]
        for start in range(0, len(states), batch):
            conn.execute(insert(S), states[start : start + batch])
    return folded


def _all_membership_events(
    conn: Connection, end: int, batch: int
) -> Iterator[tuple[str, str, datetime, int, int]]:
    """(group, type, time, sequence, count) of every membership event row up to ``end``."""
    after = 0
    while True:
        rows = conn.execute(
            select(E.c.subject, E.c.type, E.c.time, E.c.sequence, E.c.span)
            .where(E.c.sequence > after, E.c.sequence <= end, E.c.type.in_(MEMBERSHIP_TYPES))
            .order_by(E.c.sequence)
            .limit(batch)
        ).all()
        if not rows:
            return
        for subject, kind, moment, sequence, span in rows:
            yield subject, kind, moment, int(sequence), int(span)
        after = int(rows[-1][3])
