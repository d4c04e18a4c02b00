"""Random histories of customer changes, orders, rule edits and clock advances: at every
quiet point (the due flips applied) each smart group's members are include + (the rule over
the current customers and orders, at the clock's time) - exclude, and the fold of the
events equals the membership table. The clock is the unit of work's: every change and
every flip is decided at the test's time, advanced in whole seconds and microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from groupwire.domain.rules import parse_rule
from groupwire.store import repository as repo
from groupwire.store import smart_groups as smart_store
from groupwire.store import tables, unit_of_work
from groupwire.store.order_tables import customer_order
from tests.core.test_invariants import fold_memberships

START = datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)
TEXT = "%Y-%m-%dT%H:%M:%SZ"


class Clock(datetime):
    """``datetime`` whose ``now`` is the test's time."""

    at: ClassVar[datetime] = START

    @classmethod
    def now(cls, tz: Any = None) -> Clock:  # type: ignore[override]
        return cls.at  # type: ignore[return-value]


spans = st.integers(min_value=1, max_value=6).map(lambda n: f"{n}s")
RULES = st.one_of(
    spans.map(lambda d: {"created_at": {"$gte": {"$ago": d}}}),
    spans.map(lambda d: {"created_at": {"$lt": {"$ago": d}}, "has_account": True}),
    st.just({"metadata.ends": {"$gt": "$now"}}),
    st.just({"metadata.starts": {"$lte": "$now"}}),
    spans.map(lambda d: {"orders.count": {"$gte": 1, "last": d}}),
    spans.map(lambda d: {"orders.last_placed_at": {"$gte": {"$ago": d}}}),
    spans.map(
        lambda d: {
            "$or": [
                {"orders.total": {"currency": "eur", "$gte": 20, "last": d}},
                {"metadata.ends": {"$gt": {"$ahead": d}}},
            ]
        }
    ),
)
steps = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 5), st.sampled_from([0, 1, 250_000, 999_999])),
    st.tuples(st.just("customer"), st.booleans(), st.integers(-2, 6), st.integers(-2, 6)),
    st.tuples(st.just("update"), st.integers(0, 3), st.integers(-2, 6)),
    st.tuples(st.just("order"), st.integers(0, 3), st.sampled_from([10, 30]), st.booleans()),
    st.tuples(st.just("rule"), st.integers(0, 1), st.none() | RULES),
)


def reset(gw) -> None:
    with gw.engine.begin() as conn:
        for table in (
            tables.smart_group_flip,
            tables.smart_group_sweep,
            tables.membership,
            customer_order,
            tables.event,
            tables.customer,
            tables.customer_group,
            tables.subscriber_checkpoint,
        ):
            conn.execute(delete(table))
        counter = tables.outbox_counter
        # the groups went: the rules changed (each process's index of them is rebuilt)
        conn.execute(
            update(counter).values(last_sequence=0, rules_version=counter.c.rules_version + 1)
        )


def expected(gw, now: datetime) -> set[tuple[str, str]]:
    with gw.engine.connect() as conn:
        groups = smart_store.smart_groups(conn)
        table = repo.all_memberships(conn)
        customers = [row.id for row in conn.execute(tables.customer.select())]
        shots = smart_store.snapshots(conn, customers, addresses=False, with_orders=True)
    smart = {g.id: parse_rule(g.rule) for g in groups}
    found = {(g, c) for g, c in table if g not in smart}
    for gid, rule in smart.items():
        found |= {(gid, cid) for cid, shot in shots.items() if rule.matches(shot, now)}
    return found


def moment(offset: int) -> str:
    return (Clock.at + timedelta(seconds=offset)).strftime(TEXT)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(steps, min_size=1, max_size=14))
def test_members_follow_the_clock_at_every_quiet_point(gw, monkeypatch, history) -> None:
    monkeypatch.setattr(unit_of_work, "datetime", Clock)
    Clock.at = START
    reset(gw)
    groups = [gw.groups.create(f"G{n}").id for n in range(2)]
    customers: list[str] = []
    orders = 0
    for step in history:
        kind = step[0]
        if kind == "advance":
            Clock.at = Clock.at + timedelta(seconds=step[1], microseconds=step[2])
        elif kind == "customer":
            metadata = {"ends": moment(step[2]), "starts": moment(step[3])}
            customer = gw.customers.create(
                f"c{len(customers)}@shop.test", has_account=step[1], metadata=metadata
            )
            customers.append(customer.id)
        elif kind == "update" and customers:
            cid = customers[step[1] % len(customers)]
            gw.customers.update(cid, metadata={"ends": moment(step[2])})
        elif kind == "order" and customers:
            orders += 1
            cid = customers[step[1] % len(customers)]
            gw.orders.record(f"o{orders}", customer_id=cid, currency_code="eur", total=step[2])
            if step[3]:
                gw.orders.record(f"o{orders}", status="canceled")
        elif kind == "rule":
            gw.groups.update(groups[step[1]], rule=step[2])
        while gw.service.apply_due_flips():  # the quiet point: what is due is applied
            pass
        with gw.engine.connect() as conn:
            table = set(repo.all_memberships(conn))
        assert table == expected(gw, Clock.at), (step, Clock.at)
        assert fold_memberships(gw) == table
