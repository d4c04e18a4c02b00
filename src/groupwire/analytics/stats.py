"""Group statistics: members over time, joins and leaves per hour or day, from the rollup.

The answer is exact even when the ``groupwire.analytics`` subscriber lags behind: the query
reads the rollup and the group's membership events after its position in one snapshot and
folds those on top. The member count at the end of a bucket is the sum of joins minus leaves
of every hour before it (a group's hourly rows are few: one per hour that had any change).
Buckets are UTC hours or UTC days; a window is aligned outwards to whole buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from groupwire.analytics.rollup import fold, membership_events
from groupwire.analytics.tables import group_stats as S
from groupwire.analytics.tables import group_stats_hourly as H
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.store import tables as core

GRANULARITIES: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_WINDOW: dict[str, timedelta] = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
MAX_BUCKETS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StatsPoint:
    bucket: datetime
    joins: int
    leaves: int
    members: int
    """Members at the end of the bucket."""


@dataclass(frozen=True)
class GroupStats:
    group_id: str
    member_count: int
    granularity: str
    since: datetime
    until: datetime
    series: list[StatsPoint] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "member_count": self.member_count,
            "granularity": self.granularity,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "series": [
                {
                    "bucket": _iso(p.bucket),
                    "joins": p.joins,
                    "leaves": p.leaves,
                    "members": p.members,
                }
                for p in self.series
            ],
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def floor_to(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def ceil_to(moment: datetime, granularity: str) -> datetime:
    floored = floor_to(moment, granularity)
    return floored if floored == moment else floored + GRANULARITIES[granularity]


def window(
    granularity: str, since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The aligned ``[since, until)`` a query covers; ``InvalidData`` when it makes no sense."""
    if granularity not in GRANULARITIES:
        raise InvalidData(f"granularity must be one of {', '.join(GRANULARITIES)}")
    step = GRANULARITIES[granularity]
    now = now or datetime.now(UTC)
    try:
        end = ceil_to(until, granularity) if until else floor_to(now, granularity) + step
        start = floor_to(since, granularity) if since else end - DEFAULT_WINDOW[granularity]
    except OverflowError:
        raise InvalidData("since and until must be dates between years 1 and 9999") from None
    if start >= end:
        raise InvalidData("since must be before until")
    if (end - start) / step > MAX_BUCKETS:
        hint = "narrow it or use granularity=day" if granularity == "hour" else "narrow it"
        raise InvalidData(f"the window holds more than {MAX_BUCKETS} {granularity}s; {hint}")
    return start, end


def group_stats(
    engine: Engine,
    group_id: str,
    *,
    granularity: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> GroupStats:
    """A group's member count now and its series over ``[since, until)``.

    Deleted groups keep their history (their count is 0 after the deletion); an id that was
    never a group is ``NotFound``.
    """
    start, end = window(granularity, since, until, now)
    with _snapshot(engine) as conn:
        exists = conn.execute(
            select(core.customer_group.c.id).where(core.customer_group.c.id == group_id)
        ).first()
        if exists is None:
            raise NotFound("customer_group", group_id)
        state = conn.execute(
            select(S.c.member_count, S.c.last_sequence).where(S.c.group_id == group_id)
        ).first()
        rolled_members, position = (int(state[0]), int(state[1])) if state else (0, 0)
        before = conn.execute(
            select(func.coalesce(func.sum(H.c.joins - H.c.leaves), 0)).where(
                H.c.group_id == group_id, H.c.bucket < start
            )
        ).scalar_one()
        hours = conn.execute(
            select(H.c.bucket, H.c.joins, H.c.leaves)
            .where(H.c.group_id == group_id, H.c.bucket >= start, H.c.bucket < end)
            .order_by(H.c.bucket)
        ).all()
        tail_counts, tail_net = fold(membership_events(conn, group_id, after=position, limit=None))
    base = int(before)
    buckets: dict[datetime, list[int]] = {}
    for hour, joins, leaves in hours:
        cell = buckets.setdefault(floor_to(hour, granularity), [0, 0])
        cell[0] += int(joins)
        cell[1] += int(leaves)
    for hour, (joins, leaves) in tail_counts.items():
        if hour < start:
            base += joins - leaves
        elif hour < end:
            cell = buckets.setdefault(floor_to(hour, granularity), [0, 0])
            cell[0] += joins
            cell[1] += leaves
    series: list[StatsPoint] = []
    members = base
    step = GRANULARITIES[granularity]
    bucket = start
    while bucket < end:
        joins, leaves = buckets.get(bucket, (0, 0))
        members += joins - leaves
        series.append(StatsPoint(bucket, joins, leaves, members))
        bucket += step
    return GroupStats(
        group_id=group_id,
        member_count=rolled_members + tail_net,
        granularity=granularity,
        since=start,
        until=end,
        series=series,
    )


class _snapshot:
    """A read transaction that sees one snapshot (REPEATABLE READ on PostgreSQL; SQLite's WAL
    read transactions are snapshots already), so rollup and tail never count an event twice."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        self._conn = self._engine.connect()
        if self._conn.dialect.name == "postgresql":
            self._conn = self._conn.execution_options(isolation_level="REPEATABLE READ")
        self._tx = self._conn.begin()
        return self._conn

    def __exit__(self, *exc: Any) -> None:
        try:
            self._tx.rollback()
        finally:
            self._conn.close()
