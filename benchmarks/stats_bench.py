"""Group statistics on a large event log (run on demand, not in CI):
``uv run python benchmarks/stats_bench.py [--events 1000000] [--postgres URL]``.

Writes N membership events straight into the log (one executemany, spread over a year and
over ``--groups`` groups, the first of which holds ``--hot`` of them), then, same database,
same run, times one stats query (a year by day, and a week by hour) three ways:

* rollup:    ``analytics_of(gw).stats`` reading the rollup (after the backfill ``rebuild``);
* log query: the same figures computed by SQL from the ``event`` table (the group's events,
  found through the subject index), the best a query without the rollup can do;
* full scan: folding the whole event log in Python, the naive baseline.

and prints the ratios against the rollup, plus the backfill time. Both answers are compared.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text, update

from groupwire import Groupwire
from groupwire.analytics import analytics_of
from groupwire.analytics.stats import floor_to
from groupwire.store import bulk, tables

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def seed(gw: Groupwire, events: int, groups: int, hot: float) -> list[str]:
    """Write ``events`` membership events (valid join/leave toggles) directly; returns groups."""
    group_ids = [gw.groups.create(f"bench-{i}").id for i in range(groups)]
    rng = random.Random(7)
    seconds = sorted(rng.randrange(int(YEAR.total_seconds())) for _ in range(events))
    inside: dict[str, set[int]] = {g: set() for g in group_ids}
    columns = ["sequence", "id", "type", "source", "subject", "partition", "time", "data"]
    with gw.engine.begin() as conn:
        first = gw.events.last_sequence() + 1
        rows: list[tuple[Any, ...]] = []
        for n, offset in enumerate(seconds):
            group = group_ids[0] if rng.random() < hot else rng.choice(group_ids[1:])
            customer = rng.randrange(5000)
            members = inside[group]
            kind = REMOVED if customer in members else ADDED
            members.symmetric_difference_update({customer})
            moment = START + timedelta(seconds=offset)
            data = {"group_id": group, "customer_id": f"cus_{customer}"}
            if kind == REMOVED:
                data["reason"] = "removed"
            rows.append(
                (
                    first + n,
                    f"evt_{first + n}",
                    kind,
                    "bench",
                    group,
                    group,
                    bulk.timestamp(conn, moment),
                    json.dumps(data),
                )
            )
            if len(rows) == 50_000:
                bulk.insert_rows(conn, tables.event, columns, rows)
                rows = []
        bulk.insert_rows(conn, tables.event, columns, rows)
        counter = tables.outbox_counter
        conn.execute(
            update(counter).where(counter.c.id == 1).values(last_sequence=first + events - 1)
        )
    return group_ids


def log_query(
    gw: Groupwire, group_id: str, granularity: str, since: datetime, until: datetime
) -> tuple[int, list[Any]]:
    """Joins and leaves per bucket, and members at each bucket's end, from the event table."""
    e = tables.event
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(e.c.type, e.c.time).where(
                e.c.subject == group_id, e.c.type.in_((ADDED, REMOVED))
            )
        ).all()
    return _fold(rows, granularity, since, until)


def full_scan(
    gw: Groupwire, group_id: str, granularity: str, since: datetime, until: datetime
) -> tuple[int, list[Any]]:
    """The naive baseline: read the whole log and keep the group's membership events."""
    e = tables.event
    kept = []
    with gw.engine.connect() as conn:
        for subject, kind, moment in conn.execute(
            select(e.c.subject, e.c.type, e.c.time)
        ).yield_per(50_000):
            if subject == group_id and kind in (ADDED, REMOVED):
                kept.append((kind, moment))
    return _fold(kept, granularity, since, until)


def _fold(rows: Any, granularity: str, since: datetime, until: datetime) -> tuple[int, list[Any]]:
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    total = 0
    before = 0
    buckets: dict[datetime, list[int]] = {}
    for kind, moment in rows:
        delta = 1 if kind == ADDED else -1
        total += delta
        if moment < since:
            before += delta
        elif moment < until:
            cell = buckets.setdefault(floor_to(moment, granularity), [0, 0])
            cell[0 if delta > 0 else 1] += 1
    series, members, bucket = [], before, since
    while bucket < until:
        joins, leaves = buckets.get(bucket, (0, 0))
        members += joins - leaves
        series.append((bucket, joins, leaves, members))
        bucket += step
    return total, series


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench(url: str, events: int, groups: int, hot: float) -> None:
    gw = Groupwire.open(url, load_entry_points=False)
    try:
        started = time.perf_counter()
        group_ids = seed(gw, events, groups, hot)
        print(f"  seeded {events:,} membership events in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        folded = analytics_of(gw).rebuild()
        print(
            f"  backfill (rebuild from the log): {folded:,} events in "
            f"{time.perf_counter() - started:.1f} s"
        )
        hot_id = group_ids[0]
        for granularity, since, until in (
            ("day", START, START + YEAR),
            ("hour", START + timedelta(days=180), START + timedelta(days=187)),
        ):
            rollup_s, stats = best_of(
                5,
                lambda g=granularity, s=since, u=until: analytics_of(gw).stats(  # type: ignore[misc]
                    hot_id, granularity=g, since=s, until=u
                ),
            )
            log_s, (log_total, log_series) = best_of(
                3,
                lambda g=granularity, s=since, u=until: log_query(gw, hot_id, g, s, u),  # type: ignore[misc]
            )
            scan_s, (scan_total, scan_series) = best_of(
                1,
                lambda g=granularity, s=since, u=until: full_scan(gw, hot_id, g, s, u),  # type: ignore[misc]
            )
            mine = [(p.bucket, p.joins, p.leaves, p.members) for p in stats.series]
            assert mine == log_series == scan_series, "the rollup disagrees with the log"
            assert stats.member_count == log_total == scan_total
            group_events = sum(p.joins + p.leaves for p in stats.series)
            print(
                f"  {granularity:>4} series, {len(mine)} buckets, hot group "
                f"({group_events:,} events in window): rollup {rollup_s * 1000:.1f} ms | "
                f"log query {log_s * 1000:.0f} ms ({log_s / rollup_s:.0f}x) | "
                f"full scan {scan_s * 1000:.0f} ms ({scan_s / rollup_s:.0f}x)"
            )
    finally:
        gw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--hot", type=float, default=0.2, help="share of the first group")
    parser.add_argument("--postgres", default=None, help="e.g. postgresql://127.0.0.1/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite, {args.events:,} events:")
        bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.events, args.groups, args.hot)
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(
            args.postgres.replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in args.postgres else "?"
            print(f"PostgreSQL, {args.events:,} events:")
            bench(
                f"{args.postgres}{sep}options=-csearch_path%3D{schema}",
                args.events,
                args.groups,
                args.hot,
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
