"""When a smart group's rule can change its answer by itself: ``next_flip`` (the moment the
scheduler decides a customer again) is never later than the moment the Python evaluator's
answer changes. On random customers, orders, rules and clocks, on a grid of whole seconds
(every boundary of such data is a whole second or one tick after one), the answer is the
same at every second (and one tick either side) from ``now`` up to the computed flip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from groupwire.domain.models import Customer
from groupwire.domain.rules import TICK, Order, Snapshot, next_flip, parse_rule

BASE = datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)
SPAN = 60  # seconds of the grid
OPS = ["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"]

seconds = st.integers(min_value=0, max_value=SPAN)
grid = seconds.map(lambda s: BASE + timedelta(seconds=s))
spans = st.integers(min_value=1, max_value=20).map(lambda n: f"{n}s")
relatives = st.one_of(
    st.just("$now"),
    spans.map(lambda d: {"$ago": d}),
    spans.map(lambda d: {"$ahead": d}),
)
texts = st.one_of(
    grid.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ")),
    grid.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.5Z")),
    grid.map(lambda m: m.strftime("%Y-%m-%dT%H:%M")),
    st.sampled_from(["2026-12-08", "zzz", "", "2026-12-08T12:00:3"]),
)
meta_values = st.one_of(texts, st.integers(-2, 2), st.booleans(), st.none())


def time_test(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda op, at: {name: {op: at}}, st.sampled_from(OPS), relatives)


def order_test() -> st.SearchStrategy[dict[str, Any]]:
    def build(measure: str, op: str, value: Any, window: str | None, eur: bool) -> dict[str, Any]:
        body: dict[str, Any] = {op: value}
        if window is not None:
            body["last"] = window
        if eur or measure == "total":
            body["currency"] = "eur"
        return {f"orders.{measure}": body}

    counts = st.builds(
        build,
        st.sampled_from(["count", "total"]),
        st.sampled_from(OPS),
        st.integers(0, 3),
        st.none() | spans,
        st.booleans(),
    )
    times = st.builds(
        build,
        st.sampled_from(["first_placed_at", "last_placed_at"]),
        st.sampled_from(OPS),
        relatives,
        st.none() | spans,
        st.booleans(),
    )
    return counts | times


leaves = st.one_of(
    time_test("created_at"),
    time_test("updated_at"),
    time_test("metadata.ends"),
    order_test(),
    st.builds(lambda b: {"has_account": b}, st.booleans()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"$or": parts}),
        st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"$and": parts}),
    ),
    max_leaves=5,
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    customer = Customer(
        id="cus_1",
        has_account=draw(st.booleans()),
        metadata=draw(st.none() | st.fixed_dictionaries({"ends": meta_values})),
        created_at=draw(grid),
        updated_at=draw(grid),
    )
    orders = draw(
        st.lists(
            st.builds(
                Order,
                st.sampled_from(["eur", "usd"]),
                st.integers(0, 2).map(Decimal),
                st.sampled_from(["pending", "completed", "canceled", "draft"]),
                st.none() | grid,
            ),
            max_size=4,
        )
    )
    return Snapshot(customer, orders=orders)


def moments_between(start: datetime, end: datetime) -> list[datetime]:
    """Every whole second of [start, end) and one tick either side, with start itself."""
    found = {start}
    second = start.replace(microsecond=0)
    while second <= end:
        for moment in (second - TICK, second, second + TICK):
            if start <= moment < end:
                found.add(moment)
        second += timedelta(seconds=1)
    return sorted(found)


@settings(max_examples=400, deadline=None)
@given(
    snapshot=snapshots(),
    rule=conditions,
    now_second=st.integers(min_value=-30, max_value=SPAN + 30),
    micro=st.sampled_from([0, 0, 1, 500_000, 999_999]),
)
def test_the_answer_is_constant_until_the_next_flip(
    snapshot: Snapshot, rule: dict[str, Any], now_second: int, micro: int
) -> None:
    parsed = parse_rule(rule)
    now = BASE + timedelta(seconds=now_second, microseconds=micro)
    answer = parsed.matches(snapshot, now)
    flip = next_flip(parsed, snapshot, now)
    assert flip is None or flip > now
    # beyond the grid and its widest offsets nothing changes any more
    horizon = BASE + timedelta(seconds=SPAN + 60)
    end = flip if flip is not None else max(horizon, now + timedelta(seconds=1))
    for moment in moments_between(now, end):
        assert parsed.matches(snapshot, moment) == answer, (moment, flip)


def first_change(rule: Any, shot: Snapshot, now: datetime) -> datetime | None:
    """The moment the answer changes, found as the scheduler finds it: flip after flip."""
    answer = rule.matches(shot, now)
    while (flip := next_flip(rule, shot, now)) is not None:
        if rule.matches(shot, flip) != answer:
            return flip
        now = flip
    return None


def test_a_trial_ends_one_tick_after_its_fourteen_days() -> None:
    created = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    shot = Snapshot(Customer(id="cus_1", has_account=True, created_at=created))
    rule = parse_rule({"created_at": {"$gte": {"$ago": "14d"}}, "has_account": True})
    now = created + timedelta(days=3)
    assert next_flip(rule, shot, now) == created + timedelta(days=14)
    assert first_change(rule, shot, now) == created + timedelta(days=14) + TICK
    assert next_flip(rule, shot, created + timedelta(days=14) + TICK) is None


def test_a_trial_end_in_metadata_ends_at_its_second() -> None:
    shot = Snapshot(Customer(id="cus_1", metadata={"trial_ends_at": "2026-12-22T10:00:00Z"}))
    rule = parse_rule({"metadata.trial_ends_at": {"$gt": "$now"}})
    now = datetime(2026, 12, 20, tzinfo=UTC)
    ends = datetime(2026, 12, 22, 10, tzinfo=UTC)
    assert next_flip(rule, shot, now) == ends
    assert first_change(rule, shot, now) == ends


def test_an_order_leaving_its_window_is_a_flip() -> None:
    placed = datetime(2026, 9, 1, tzinfo=UTC)
    shot = Snapshot(Customer(id="cus_1"), orders=[Order("eur", Decimal(1200), "completed", placed)])
    rule = parse_rule({"orders.total": {"currency": "eur", "$gte": 1000, "last": "90d"}})
    now = placed + timedelta(days=1)
    assert first_change(rule, shot, now) == placed + timedelta(days=90) + TICK
