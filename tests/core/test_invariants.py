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
