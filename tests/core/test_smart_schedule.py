"""The scheduler of smart groups' time conditions: a member moves at the moment its rule's
answer changes by itself (trigger ``schedule``), once, seconds late at most; several
processes apply each flip once, and a killed one's claims go to another."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from groupwire import Groupwire, HookRejected, hookimpl
from groupwire.store import repository as repo
from groupwire.store import smart_groups as store
from tests.core.test_invariants import fold_memberships, smart_expected

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"
FLIP_WORKER = Path(__file__).with_name("flip_worker.py")
LATE = timedelta(seconds=1.5)  # how late a flip may be seen on this loaded machine


def moves(gw: Groupwire, group_id: str) -> list[tuple[str, str, str, datetime]]:
    return [
        (
            e.type,
            e.data["customer_id"],
            e.data["trigger"],
            datetime.fromisoformat(e.data["timestamp"].replace("Z", "+00:00")),
        )
        for e in gw.events.list(subject=group_id, limit=None)
        if e.type in (ADDED, REMOVED)
    ]


def wait_until(condition, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def members(gw: Groupwire, group_id: str) -> set[str]:
    return {c.id for c in gw.groups.members(group_id)}


def consistent(gw: Groupwire) -> None:
    with gw.engine.connect() as conn:
        table = set(repo.all_memberships(conn))
    assert fold_memberships(gw) == table
    assert smart_expected(gw) == table


@pytest.fixture
def sleepy(database_url: str):
    """A Groupwire whose scheduler never wakes by itself within a test: only its own
    commits (and the flips they write) wake it."""
    instance = Groupwire.open(
        database_url, load_entry_points=False, plugins=[], smart_schedule_max_sleep=60
    )
    yield instance.start()
    instance.close()


def test_a_trial_ends_at_its_moment_with_trigger_schedule(sleepy):
    gw = sleepy
    trial = gw.groups.create(
        "Trial", rule={"created_at": {"$gte": {"$ago": "2s"}}, "has_account": True}
    )
    ada = gw.customers.create("ada@shop.test", has_account=True)
    gw.customers.create("bob@shop.test")  # no account: never in
    assert members(gw, trial.id) == {ada.id}

    wait_until(lambda: not members(gw, trial.id))
    [joined, left] = moves(gw, trial.id)
    assert joined[:3] == (ADDED, ada.id, "customer_created")
    assert left[:3] == (REMOVED, ada.id, "schedule")
    ends = ada.created_at + timedelta(seconds=2)
    assert ends < left[3] <= ends + LATE
    time.sleep(0.5)  # nothing more happens
    assert len(moves(gw, trial.id)) == 2
    consistent(gw)


def test_a_trial_end_in_metadata_and_a_start_flip_at_their_second(sleepy):
    gw = sleepy
    ends = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    starts = ends - timedelta(seconds=1)
    trial = gw.groups.create("Trial", rule={"metadata.trial_ends_at": {"$gt": "$now"}})
    later = gw.groups.create("Later", rule={"metadata.starts_at": {"$lte": "$now"}})
    text = "%Y-%m-%dT%H:%M:%SZ"
    ada = gw.customers.create(
        "ada@shop.test",
        metadata={"trial_ends_at": ends.strftime(text), "starts_at": starts.strftime(text)},
    )
    assert members(gw, trial.id) == {ada.id} and members(gw, later.id) == set()

    wait_until(lambda: not members(gw, trial.id) and members(gw, later.id) == {ada.id})
    [(_, _, _, joined_at)] = [m for m in moves(gw, later.id) if m[2] == "schedule"]
    [(_, _, _, left_at)] = [m for m in moves(gw, trial.id) if m[2] == "schedule"]
    assert starts <= joined_at <= starts + LATE
    assert ends <= left_at <= ends + LATE
    consistent(gw)


def test_an_order_leaving_its_window_takes_the_customer_out(sleepy):
    gw = sleepy
    recent = gw.groups.create("Recent", rule={"orders.count": {"$gte": 1, "last": "2s"}})
    ada = gw.customers.create("ada@shop.test")
    order = gw.orders.record("o1", customer_id=ada.id, currency_code="eur", total=10)
    assert members(gw, recent.id) == {ada.id}

    wait_until(lambda: not members(gw, recent.id))
    assert [m[:3] for m in moves(gw, recent.id)] == [
        (ADDED, ada.id, "order_placed"),
        (REMOVED, ada.id, "schedule"),
    ]
    ends = order.order.placed_at + timedelta(seconds=2)
    assert ends < moves(gw, recent.id)[1][3] <= ends + LATE
    consistent(gw)


def test_a_rule_saved_again_reschedules_and_manual_or_deleted_groups_have_no_flips(gw):
    ada = gw.customers.create("ada@shop.test", has_account=True)
    trial = gw.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "1d"}}})
    assert members(gw, trial.id) == {ada.id}
    assert gw.service.apply_due_flips() == 1  # the rule's application: decided again now
    assert flips(gw, trial.id) == {ada.id: ada.created_at + timedelta(days=1)}
    gw.groups.update(trial.id, rule={"created_at": {"$gte": {"$ago": "2d"}}})
    assert flips(gw, trial.id) == {}  # a sweep decides everyone again, then each flip
    assert gw.service.next_flip_at() == gw.groups.get(trial.id).updated_at
    assert gw.service.apply_due_flips() == 1
    assert flips(gw, trial.id) == {ada.id: ada.created_at + timedelta(days=2)}
    gw.groups.update(trial.id, rule=None)
    assert flips(gw, trial.id) == {}
    gw.groups.update(trial.id, rule={"created_at": {"$gte": {"$ago": "3d"}}})
    gw.service.apply_due_flips()
    assert flips(gw, trial.id) == {ada.id: ada.created_at + timedelta(days=3)}
    gw.groups.delete(trial.id)
    assert flips(gw, trial.id) == {} and gw.service.next_flip_at() is None


def flips(gw: Groupwire, group_id: str) -> dict[str, datetime]:
    with gw.engine.connect() as conn:
        return store.flips_of(conn, group_id)


def test_a_vetoed_flip_is_recorded_and_the_member_stays(gw):
    class Keep:
        @hookimpl
        def before_remove_customer_from_group(self, group, customers, reason, context):
            raise HookRejected("trials are extended by hand")

    gw.register(Keep())
    trial = gw.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "1s"}}})
    ada = gw.customers.create("ada@shop.test")
    time.sleep(1.1)
    while gw.service.apply_due_flips():
        pass
    assert members(gw, trial.id) == {ada.id}
    [veto] = [e for e in gw.events.list(subject=trial.id) if e.type.endswith("rule_vetoed")]
    assert (veto.data["action"], veto.data["trigger"]) == ("remove", "schedule")


def start_worker(database_url: str, marker: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FLIP_WORKER), database_url, str(marker), *extra],
        cwd=Path(__file__).parents[2],
    )


@pytest.mark.postgres_only
def test_two_workers_one_killed_mid_flip_apply_each_flip_once(gw, database_url, tmp_path):
    trial = gw.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "2s"}}})
    created = [gw.customers.create(f"a{n}@shop.test") for n in range(10)]
    first_ids = [c.id for c in created]
    time.sleep(max(0.0, (created[-1].created_at - datetime.now(UTC)).total_seconds() + 2.1))
    held, started = tmp_path / "held", tmp_path / "started"
    first = start_worker(database_url, held, "hold")  # all ten are due: it claims them all
    second = None
    try:
        wait_until(held.exists, timeout=20)  # holds the flips it claimed, uncommitted
        held_ids = members(gw, trial.id)
        assert held_ids == set(first_ids)
        second = start_worker(database_url, started)
        wait_until(started.exists, timeout=20)
        # flips falling due while the first holds its claims: the second applies them
        later_ids = [gw.customers.create(f"b{n}@shop.test").id for n in range(10)]
        wait_until(lambda: members(gw, trial.id) == held_ids, timeout=10)
        time.sleep(0.5)
        assert members(gw, trial.id) == held_ids  # the claimed flips are the first's
        first.kill()  # its transaction rolls back: the claims go to the second
        first.wait(10)
        wait_until(lambda: not members(gw, trial.id), timeout=20)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    removed = [m[1] for m in moves(gw, trial.id) if m[0] == REMOVED]
    assert sorted(removed) == sorted(first_ids + later_ids)  # each once
    assert {m[2] for m in moves(gw, trial.id) if m[0] == REMOVED} == {"schedule"}
    consistent(gw)


def test_a_flip_failing_on_its_own_is_put_off_and_holds_up_no_other(gw):
    from groupwire.service.scheduler import POSTPONE, FlipScheduler

    class Broken:
        @hookimpl
        def before_remove_customer_from_group(self, group, customers, reason, context):
            if any(c.email == "bad@shop.test" for c in customers):
                raise RuntimeError("a bug in a plugin")

    gw.register(Broken())
    trial = gw.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "1s"}}})
    bad = gw.customers.create("bad@shop.test")  # due first
    good = gw.customers.create("good@shop.test")
    time.sleep(1.1)
    scheduler = FlipScheduler(gw.service)
    for _ in range(4):
        scheduler.step()
    assert members(gw, trial.id) == {bad.id}
    assert [m[:3] for m in moves(gw, trial.id) if m[0] == REMOVED] == [
        (REMOVED, good.id, "schedule")
    ]
    [(cid, at)] = gw.groups.next_flips(trial.id)
    assert cid == bad.id and at > datetime.now(UTC) + timedelta(seconds=POSTPONE - 5)
