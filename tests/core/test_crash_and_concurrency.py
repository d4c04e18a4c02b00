"""Failure and concurrency: a killed subscriber resumes with nothing skipped; concurrent
writers on one group leave a membership table their event history folds to."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from groupwire import Groupwire
from groupwire.store import repository as repo
from groupwire.store import tables
from tests.core.test_invariants import fold_memberships

CRASH_SUBSCRIBER = Path(__file__).with_name("crash_subscriber.py")


def handled(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def start_subscriber(database_url: str, output: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CRASH_SUBSCRIBER), database_url, str(output)],
        stdout=subprocess.DEVNULL,
    )


def test_a_subscriber_killed_mid_stream_resumes_with_no_event_skipped(gw, database_url, tmp_path):
    group = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{i}@shop.test").id for i in range(400)]
    gw.groups.add_customers(group.id, ids)
    expected = [
        e.sequence for e in gw.events.list(type="customer_group.customer_added", limit=None)
    ]
    output = tmp_path / "handled.txt"

    first = start_subscriber(database_url, output)
    try:
        assert wait_for(lambda: len(handled(output)) >= 120, 60), "subscriber never got going"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    before_restart = handled(output)
    assert len(set(before_restart)) < len(expected), "the kill came too late to test anything"

    second = start_subscriber(database_url, output)
    try:
        assert wait_for(lambda: set(handled(output)) >= set(expected), 60)
    finally:
        second.kill()
        second.wait(10)

    seen = handled(output)
    assert set(seen) == set(expected)
    redelivered = len(seen) - len(expected)
    assert 0 <= redelivered <= 100  # at least once: at most one unsaved checkpoint batch again
    resumed_at = seen[len(before_restart)]
    assert resumed_at <= max(before_restart) + 1  # it resumed at or before where it stopped


@pytest.mark.postgres_only
def test_eight_threads_on_one_group_end_consistent(gw):
    group = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{i}@shop.test").id for i in range(12)]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(40):
                picked = rng.sample(ids, rng.randint(1, 4))
                if rng.random() < 0.5:
                    gw.groups.add_customers(group.id, picked)
                else:
                    gw.groups.remove_customers(group.id, picked)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    with gw.engine.connect() as conn:
        table = repo.all_memberships(conn)
    assert fold_memberships(gw) == table
    sequences = [e.sequence for e in gw.events.list(limit=None)]
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(gw.events.list(type="customer_group.customer_added", limit=None)) > 12


@pytest.mark.postgres_only
def test_concurrent_deletes_and_adds_never_leave_a_deleted_customer_in_a_group(gw):
    groups = [gw.groups.create(name=f"G{i}").id for i in range(3)]
    ids = [gw.customers.create(email=f"c{i}@shop.test").id for i in range(30)]
    errors: list[BaseException] = []

    def adder(group_id: str) -> None:
        try:
            for customer_id in ids:
                try:
                    gw.groups.add_customers(group_id, [customer_id])
                except Exception as error:
                    if type(error).__name__ != "NotFound":
                        raise
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def deleter() -> None:
        try:
            for customer_id in ids[::2]:
                gw.customers.delete(customer_id)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=adder, args=(g,)) for g in groups]
    threads.append(threading.Thread(target=deleter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    with gw.engine.connect() as conn:
        table = repo.all_memberships(conn)
    deleted = set(ids[::2])
    assert not [pair for pair in table if pair[1] in deleted]
    assert fold_memberships(gw) == table


def test_processes_subscribing_one_subscriber_at_the_same_moment_all_start(gw, database_url):
    """Worker processes scaled out start together and each subscribes the same names: the
    first to record a subscriber's start wins, the others find it; none fails."""
    gw.groups.create(name="Before the workers")  # a log that does not start at zero
    others = [Groupwire.open(database_url, load_entry_points=False, plugins=[]) for _ in range(3)]
    instances = [gw, *others]
    names = [f"worker-subscriber-{n}" for n in range(25)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(instances))

    def start(instance: Groupwire) -> None:
        for name in names:
            barrier.wait(10)
            try:
                instance.subscribe("*", lambda event: None, name=name, from_now=True)
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=start, args=(instance,)) for instance in instances]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in others:
            other.close()
    assert errors == []
    last = gw.events.list(limit=None)[-1].sequence
    with gw.engine.connect() as conn:
        starts = dict(
            conn.execute(
                select(
                    tables.subscriber_checkpoint.c.subscriber,
                    tables.subscriber_checkpoint.c.last_sequence,
                ).where(tables.subscriber_checkpoint.c.subscriber.in_(names))
            ).all()
        )
    assert starts == {name: last for name in names}


FIRST_START = """
import sys, time
from groupwire import Groupwire
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))  # all open the database at the same moment
Groupwire.open(url, load_entry_points=False, plugins=[]).close()
"""


def test_processes_starting_together_on_a_new_database_all_start(database_url):
    """An API server and its workers started at once on an empty database: one of them
    creates the schema, the others wait for it and find it done."""
    start_at = time.time() + 4
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START, database_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outcomes = [(process.wait(120), process.stderr.read().decode()) for process in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], [err[-800:] for _, err in outcomes]
    gw = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    try:
        customer = gw.customers.create(email="first@shop.test")
        assert [e.subject for e in gw.events.list()] == [customer.id]
    finally:
        gw.close()
