"""Group statistics from the event log: exact across deletes and re-joins, whatever the lag of
the rollup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from groupwire import Groupwire
from groupwire.analytics.rollup import catch_up
from groupwire.analytics.tables import group_stats_hourly
from groupwire.domain.ids import new_id
from tests.usecases.history import ADDED, REMOVED, append_events, fold_log

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def series_of(stats: Any) -> list[tuple[datetime, int, int, int]]:
    return [(p.bucket, p.joins, p.leaves, p.members) for p in stats.series]


def test_stats_over_the_api_follow_joins_leaves_deletes_and_rejoins(
    client: Any, gw: Groupwire
) -> None:
    group = gw.groups.create("VIP")
    a, b, c = (gw.customers.create(f"{n}@example.com") for n in "abc")
    gw.groups.add_customers(group.id, [a.id, b.id, c.id])
    gw.groups.remove_customers(group.id, [a.id])
    gw.groups.add_customers(group.id, [a.id])  # re-join
    gw.customers.delete(b.id)  # leaves with reason customer_deleted
    assert gw.drain(30)

    url = f"/admin/customer-groups/{group.id}/stats"
    response = client.get(url, params={"granularity": "hour"})
    assert response.status_code == 200, response.text
    stats = response.json()["stats"]
    assert stats["group_id"] == group.id
    assert stats["member_count"] == 2 == len(gw.groups.members(group.id))
    assert len(stats["series"]) == 48
    now_bucket = stats["series"][-1]
    assert (now_bucket["joins"], now_bucket["leaves"], now_bucket["members"]) == (4, 2, 2)
    assert all(p["joins"] == p["leaves"] == p["members"] == 0 for p in stats["series"][:-2])
    assert set(now_bucket) == {"bucket", "joins", "leaves", "members"}

    gw.groups.delete(group.id)
    after = client.get(f"/admin/customer-groups/{group.id}/stats").json()["stats"]
    assert after["member_count"] == 0
    assert after["series"][-1]["leaves"] == 4 and after["series"][-1]["members"] == 0


def test_stats_requests_are_validated(client: Any, gw: Groupwire) -> None:
    group = gw.groups.create("VIP")
    url = f"/admin/customer-groups/{group.id}/stats"
    for params in (
        {"granularity": "week"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"granularity": "hour", "since": "2000-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "yesterday"},
        {"until": "9999-12-31T23:30:00Z"},
        {"bogus": "1"},
    ):
        response = client.get(url, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["type"] == "invalid_data"
    missing = client.get("/admin/customer-groups/cusgroup_nope/stats")
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"


def test_a_window_is_aligned_to_whole_buckets(gw: Groupwire) -> None:
    group = gw.groups.create("VIP")
    t0 = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    append_events(gw.engine, [(ADDED, group.id, "cus_1", t0), (ADDED, group.id, "cus_2", t0 + DAY)])
    stats = gw.analytics.stats(
        group.id, granularity="day", since=t0, until=t0 + DAY + timedelta(minutes=1)
    )
    assert stats.since == datetime(2025, 3, 1, tzinfo=UTC)
    assert stats.until == datetime(2025, 3, 3, tzinfo=UTC)
    assert series_of(stats) == [
        (datetime(2025, 3, 1, tzinfo=UTC), 1, 0, 1),
        (datetime(2025, 3, 2, tzinfo=UTC), 1, 0, 2),
    ]


BASE = datetime(2025, 1, 1, tzinfo=UTC)
steps = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 24 * 60 * 5)),  # (customer, minutes from BASE)
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=steps,
    rolled=st.floats(0, 1),
    window=st.tuples(st.integers(-30, 24 * 5), st.integers(1, 24 * 6)),
)
def test_stats_equal_a_fold_of_the_raw_event_log_whatever_the_rollup_lag(
    gw: Groupwire, history: list[tuple[int, int]], rolled: float, window: tuple[int, int]
) -> None:
    """Random join/leave histories (each customer toggles in and out), with the rollup caught
    up to a random point: hourly and daily series and the count equal a fold of the raw log."""
    group_id = gw.groups.create(new_id("history")).id
    inside: set[int] = set()
    rows = []
    for customer, minutes in sorted(history, key=lambda step: step[1]):
        kind = REMOVED if customer in inside else ADDED
        inside.symmetric_difference_update({customer})
        rows.append((kind, group_id, f"cus_{customer}", BASE + timedelta(minutes=minutes)))
    cut = int(len(rows) * rolled)
    append_events(gw.engine, rows[:cut])
    catch_up(gw.engine, group_id)  # the rollup covers the first part of the history ...
    append_events(gw.engine, rows[cut:])  # ... and the rest is only in the log
    since = BASE + window[0] * HOUR
    until = since + window[1] * HOUR

    for granularity, step in (("hour", HOUR), ("day", DAY)):
        stats = gw.analytics.stats(group_id, granularity=granularity, since=since, until=until)
        count, expected = fold_log(gw.engine, group_id, stats.since, stats.until, step)
        assert stats.member_count == count == len(inside)
        assert series_of(stats) == expected


def test_the_subscriber_keeps_the_rollup_exact_and_a_rebuild_changes_nothing(
    gw: Groupwire,
) -> None:
    groups = [gw.groups.create(f"G{i}") for i in range(3)]
    customers = [gw.customers.create(f"c{i}@example.com") for i in range(8)]
    gw.groups.add_customers(groups[0].id, [c.id for c in customers])
    gw.groups.add_customers(groups[1].id, [c.id for c in customers[:4]])
    gw.groups.remove_customers(groups[0].id, [c.id for c in customers[2:5]])
    gw.customers.delete(customers[0].id)
    gw.groups.delete(groups[1].id)
    gw.groups.add_customers(groups[2].id, [customers[7].id])
    assert gw.drain(30)

    def snapshot() -> list[tuple[Any, ...]]:
        table = group_stats_hourly
        with gw.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.group_id, table.c.bucket)).all()
        return [tuple(row) for row in rows]

    maintained = snapshot()
    assert {row[0] for row in maintained} == {g.id for g in groups}
    counts = {g.id: gw.analytics.stats(g.id).member_count for g in groups}
    assert counts == {groups[0].id: 4, groups[1].id: 0, groups[2].id: 1}

    folded = gw.analytics.rebuild()
    assert folded == len(gw.events.list(type="customer_group.customer_*", limit=None))
    assert snapshot() == maintained
    assert {g.id: gw.analytics.stats(g.id).member_count for g in groups} == counts
