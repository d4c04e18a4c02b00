"""Concurrency on PostgreSQL: customer updates and orders racing rule edits made by another
process end consistent: every smart group holds exactly its rule's members, and the event
fold equals the membership table."""

from __future__ import annotations

import random
import threading

import pytest

from groupwire import Groupwire, hookimpl
from groupwire.store import repository as repo
from tests.core.test_invariants import fold_memberships, smart_expected

RULES = [
    {"first_name": "Ada"},
    {"first_name": "Bob"},
    {"orders.total": {"currency": "eur", "$gte": 100}},
    {"$or": [{"first_name": "Ada"}, {"orders.count": {"$gte": 2}}]},
]


@pytest.mark.postgres_only
def test_customer_updates_and_orders_racing_rule_edits_end_consistent(gw, database_url):
    customers = [gw.customers.create(f"c{n}@shop.test", first_name="Cy").id for n in range(12)]
    for n in range(100):  # more for each rule edit to decide: a wider window for the race
        gw.customers.create(f"other{n}@shop.test", first_name=random.choice(["Ada", "Bob"]))
    group = gw.groups.create("Racing", rule=RULES[0])
    other = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    errors: list[BaseException] = []

    def updates(seed: int) -> None:
        chooser = random.Random(seed)
        try:
            for n in range(60):
                customer = chooser.choice(customers)
                if chooser.random() < 0.5:
                    name = chooser.choice(["Ada", "Bob", "Cy"])
                    gw.customers.update(customer, first_name=name)
                else:
                    gw.orders.record(
                        f"{customer}-{n % 3}",
                        customer_id=customer,
                        currency_code="eur",
                        total=chooser.choice([30, 80, 120]),
                    )
        except BaseException as error:
            errors.append(error)

    def edits() -> None:
        chooser = random.Random(7)
        try:
            for _ in range(20):
                other.groups.update(group.id, rule=chooser.choice(RULES))
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=updates, args=(seed,)) for seed in range(3)]
        threads.append(threading.Thread(target=edits))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()

    assert errors == []
    with gw.engine.connect() as conn:
        table = repo.all_memberships(conn)
    assert table == smart_expected(gw)
    assert fold_memberships(gw) == table


class PauseOnce:
    """Holds the first addition to ``group_name`` until told to go on."""

    def __init__(self, group_name: str) -> None:
        self.group_name = group_name
        self.reached = threading.Event()
        self.go_on = threading.Event()

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        if group.name == self.group_name and not self.reached.is_set():
            self.reached.set()
            assert self.go_on.wait(30)


@pytest.mark.postgres_only
def test_a_change_that_decided_with_a_rule_edited_meanwhile_is_decided_again(gw, database_url):
    """A customer update decides Adas with its old rule, then waits; another process changes
    that rule and commits; the update's commit must not keep its stale decision."""
    customer = gw.customers.create("cy@shop.test", first_name="Cy")
    adas = gw.groups.create("Adas", rule={"first_name": "Ada"})
    gw.groups.create("Bobs", rule={"first_name": "Bob"})  # decided after Adas (id order)
    pause = PauseOnce("Bobs")
    gw.register(pause)
    done: list[BaseException | None] = []

    def update() -> None:
        try:
            gw.customers.update(customer.id, first_name="Bob")
            done.append(None)
        except BaseException as error:
            done.append(error)

    thread = threading.Thread(target=update)
    thread.start()
    assert pause.reached.wait(30)  # Adas decided for Bob under {"first_name": "Ada"}
    other = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    try:
        other.groups.update(adas.id, rule={"first_name": "Bob"})
    finally:
        other.close()
    pause.go_on.set()
    thread.join(30)

    assert done == [None]
    assert [c.id for c in gw.groups.members(adas.id)] == [customer.id]
    with gw.engine.connect() as conn:
        table = repo.all_memberships(conn)
    assert table == smart_expected(gw)
    assert fold_memberships(gw) == table
