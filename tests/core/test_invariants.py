"""Invariants under random sequences of operations (hypothesis stateful testing).

Whatever happens — bulk adds and removes, set-groups, deletes of groups and of customers —
folding every customer_added/customer_removed event in sequence order gives exactly the
membership table, and sequences are unique and gap-free.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, update

from groupwire import Groupwire, NotFound
from groupwire.store import repository as repo
from groupwire.store import tables

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"


def reset(gw: Groupwire) -> None:
    with gw.engine.begin() as conn:
        for table in (
            tables.membership,
            tables.event,
            tables.customer,
            tables.customer_group,
            tables.subscriber_checkpoint,
        ):
            conn.execute(delete(table))
        conn.execute(update(tables.outbox_counter).values(last_sequence=0))


def fold_memberships(gw: Groupwire) -> set[tuple[str, str]]:
    members: set[tuple[str, str]] = set()
    for event in gw.events.list(type=[ADDED, REMOVED], limit=None):
        pair = (event.data["group_id"], event.data["customer_id"])
        if event.type == ADDED:
            assert pair not in members, f"added twice without a removal: {pair}"
            members.add(pair)
        else:
            assert pair in members, f"removed without being a member: {pair}"
            members.remove(pair)
    return members


def make_machine(gw: Groupwire) -> type[RuleBasedStateMachine]:
    class Memberships(RuleBasedStateMachine):
        groups = Bundle("groups")
        customers = Bundle("customers")

        def __init__(self) -> None:
            super().__init__()
            reset(gw)
            self.expected: set[tuple[str, str]] = set()
            self.counter = 0

        def _next(self) -> int:
            self.counter += 1
            return self.counter

        @rule(target=groups)
        def create_group(self) -> str:
            return gw.groups.create(name=f"group-{self._next()}").id

        @rule(target=customers)
        def create_customer(self) -> str:
            return gw.customers.create(email=f"c{self._next()}@shop.test").id

        @rule(group=groups, picked=st.lists(customers, max_size=5))
        def add(self, group: str, picked: list[str]) -> None:
            try:
                change = gw.groups.add_customers(group, picked)
            except NotFound:
                return
            new = {(group, c) for c in picked} - self.expected
            assert {(group, c) for c in change.added} == new
            self.expected |= new

        @rule(group=groups, picked=st.lists(customers, max_size=5))
        def remove(self, group: str, picked: list[str]) -> None:
            try:
                change = gw.groups.remove_customers(group, picked)
            except NotFound:
                return
            gone = {(group, c) for c in picked} & self.expected
            assert {(group, c) for c in change.removed} == gone
            self.expected -= gone

        @rule(customer=customers, picked=st.lists(groups, max_size=3))
        def set_groups(self, customer: str, picked: list[str]) -> None:
            try:
                gw.customers.set_groups(customer, picked)
            except NotFound:
                return
            self.expected = {(g, c) for g, c in self.expected if c != customer}
            self.expected |= {(g, customer) for g in picked}

        @rule(group=consumes(groups))
        def delete_group(self, group: str) -> None:
            try:
                gw.groups.delete(group)
            except NotFound:
                return
            self.expected = {(g, c) for g, c in self.expected if g != group}

        @rule(customer=consumes(customers))
        def delete_customer(self, customer: str) -> None:
            try:
                gw.customers.delete(customer)
            except NotFound:
                return
            self.expected = {(g, c) for g, c in self.expected if c != customer}

        @invariant()
        def event_fold_equals_membership_table(self) -> None:
            with gw.engine.connect() as conn:
                table = repo.all_memberships(conn)
            assert fold_memberships(gw) == table == self.expected

        @invariant()
        def sequences_are_unique_and_gap_free(self) -> None:
            sequences = [e.sequence for e in gw.events.list(limit=None)]
            assert sequences == list(range(1, len(sequences) + 1))
            assert gw.events.last_sequence() == len(sequences)

    return Memberships


def test_event_history_always_folds_to_the_membership_table(gw):
    machine = make_machine(gw)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


# --- smart groups ------------------------------------------------------------------------------

SMART_RULES = [
    {"first_name": "Ada"},
    {"first_name": {"$in": ["Ada", "Bob"]}, "exclude": []},
    {"metadata.tier": "gold"},
    {"$or": [{"company_name": {"$exists": True}}, {"metadata.tier": {"$ne": "gold"}}]},
    {"addresses.country_code": "de"},
    {"orders.count": {"$gte": 1}},
    {"orders.total": {"currency": "eur", "$gte": 100, "last": "30d"}},
    {"orders.count": {"$eq": 0}, "has_account": False},
]


def smart_expected(gw: Groupwire) -> set[tuple[str, str]]:
    """include + (rule over current customers and facts) - exclude, for every smart group,
    decided in Python over each customer's snapshot (groups.id rules in dependency order)."""
    from datetime import UTC, datetime

    from groupwire.domain.rules import parse_rule
    from groupwire.store import smart_groups as smart_store

    now = datetime.now(UTC)
    with gw.engine.connect() as conn:
        groups = {g.id: g for g in smart_store.smart_groups(conn)}
        table = repo.all_memberships(conn)
        customers = [row.id for row in conn.execute(tables.customer.select())]
        shots = smart_store.snapshots(conn, customers, addresses=True, with_orders=True)
    expected = {(g, c) for g, c in table if g not in groups}  # manual groups as they are
    from groupwire.service.smart_groups import _dependency_order

    rules = {gid: parse_rule(group.rule) for gid, group in groups.items()}
    order = _dependency_order({gid: rule.group_ids for gid, rule in rules.items()})
    for gid in order:
        for cid, shot in shots.items():
            member_of = frozenset(g for g, c in expected if c == cid)
            shot = type(shot)(shot.customer, shot.addresses, shot.orders, member_of)
            if rules[gid].matches(shot, now):
                expected.add((gid, cid))
    return expected


def make_smart_machine(gw: Groupwire) -> type[RuleBasedStateMachine]:
    from groupwire import InvalidData, NotAllowed

    def reset_all() -> None:
        from groupwire.store.address_tables import customer_address
        from groupwire.store.order_tables import customer_order

        with gw.engine.begin() as conn:
            conn.execute(delete(customer_order))
            conn.execute(delete(customer_address))
        reset(gw)
        with gw.engine.begin() as conn:  # the groups went behind the service's back
            counter = tables.outbox_counter
            conn.execute(update(counter).values(rules_version=counter.c.rules_version + 1))

    class SmartMemberships(RuleBasedStateMachine):
        groups = Bundle("groups")
        customers = Bundle("customers")

        def __init__(self) -> None:
            super().__init__()
            reset_all()
            self.counter = 0

        def _next(self) -> int:
            self.counter += 1
            return self.counter

        @rule(target=groups, picked=st.none() | st.sampled_from(SMART_RULES))
        def create_group(self, picked) -> str:
            return gw.groups.create(name=f"group-{self._next()}", rule=picked).id

        @rule(
            group=groups,
            picked=st.none() | st.sampled_from(SMART_RULES),
            reads=st.none() | groups,
            negated=st.booleans(),
            include=st.lists(customers, max_size=2),
            exclude=st.lists(customers, max_size=2),
        )
        def set_rule(self, group, picked, reads, negated, include, exclude) -> None:
            value = None
            if picked is not None or reads is not None:
                value = dict(picked or {})
                if reads is not None:
                    value["groups.id"] = {"$nin": [reads]} if negated else reads
                if include:
                    value["include"] = include
                if exclude:
                    value["exclude"] = exclude
            try:
                gw.groups.update(group, rule=value)
            except (NotFound, InvalidData):  # a deleted group, a cycle, a deleted group read
                return

        @rule(
            target=customers,
            first=st.sampled_from(["Ada", "Bob", "Cy"]),
            company=st.none() | st.just("ACME"),
            account=st.booleans(),
        )
        def create_customer(self, first, company, account) -> str:
            return gw.customers.create(
                email=f"c{self._next()}@shop.test",
                first_name=first,
                company_name=company,
                has_account=account,
            ).id

        @rule(
            customer=customers,
            first=st.sampled_from(["Ada", "Bob", "Cy"]),
            tier=st.sampled_from(["gold", "silver", ""]),
        )
        def update_customer(self, customer, first, tier) -> None:
            try:
                gw.customers.update(customer, first_name=first, metadata={"tier": tier})
            except NotFound:
                return

        @rule(customer=customers, country=st.sampled_from(["de", "fr"]))
        def add_address(self, customer, country) -> None:
            try:
                gw.customers.addresses.create(customer, country_code=country)
            except NotFound:
                return

        @rule(
            customer=customers,
            number=st.integers(0, 4),
            total=st.sampled_from([40, 60, 150]),
            status=st.sampled_from(["pending", "completed", "canceled"]),
        )
        def record_order(self, customer, number, total, status) -> None:
            try:
                gw.orders.record(
                    f"{customer}-{number}",
                    customer_id=customer,
                    currency_code="eur",
                    total=total,
                    status=status,
                )
            except NotFound:
                return

        @rule(group=groups, picked=st.lists(customers, max_size=3), adding=st.booleans())
        def change_members_by_hand(self, group, picked, adding) -> None:
            try:
                if adding:
                    gw.groups.add_customers(group, picked)
                else:
                    gw.groups.remove_customers(group, picked)
            except (NotFound, NotAllowed):
                return

        @rule(group=consumes(groups))
        def delete_group(self, group) -> None:
            try:
                gw.groups.delete(group)
            except NotFound:
                return

        @rule(customer=consumes(customers))
        def delete_customer(self, customer) -> None:
            try:
                gw.customers.delete(customer)
            except NotFound:
                return

        @invariant()
        def smart_groups_hold_exactly_their_rules_members(self) -> None:
            with gw.engine.connect() as conn:
                table = repo.all_memberships(conn)
            assert table == smart_expected(gw)
            assert fold_memberships(gw) == table

    return SmartMemberships


def test_smart_groups_always_hold_include_plus_rule_minus_exclude_and_fold_to_the_table(gw):
    machine = make_smart_machine(gw)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
