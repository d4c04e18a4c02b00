"""A rule saved with ``stream``: applied after its commit by a sweep, in committed chunks
(``trigger: "rule_changed"``); a process killed mid-sweep leaves it to be finished by the
next, each join and leave once, the fold of events equal to the table at every commit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from groupwire import Groupwire
from groupwire.store import repository as repo
from tests.core.test_invariants import fold_memberships, smart_expected

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"
SWEEP_WORKER = Path(__file__).with_name("sweep_worker.py")
RULE = {"company_name": "ACME"}


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def table(gw: Groupwire) -> set[tuple[str, str]]:
    with gw.engine.connect() as conn:
        return set(repo.all_memberships(conn))


def members(gw: Groupwire, group_id: str) -> set[str]:
    return {c.id for c in gw.groups.members(group_id)}


def moves(gw: Groupwire, group_id: str, after: int) -> list[tuple[str, str, str, int]]:
    return [
        (e.type, e.data["customer_id"], e.data["trigger"], e.data["rule_version"])
        for e in gw.events.list(type=[ADDED, REMOVED], subject=group_id, after=after, limit=None)
    ]


def shop(gw: Groupwire) -> tuple[str, str, set[str], set[str]]:
    """120 customers, every third of ACME; a manual VIP group holding the first 30 (ACME or
    not), and a smart group following VIP's members. Returns the two groups' ids and who
    the rule will take in and let go."""
    ids = []
    for n in range(120):
        company = "ACME" if n % 3 == 0 else "Other"
        ids.append(gw.customers.create(f"c{n:03}@shop.test", company_name=company).id)
    vip = gw.groups.create("VIP")
    follower = gw.groups.create("Follows VIP", rule={"groups.id": {"$in": [vip.id]}})
    gw.groups.add_customers(vip.id, ids[:30])
    acme = {cid for n, cid in enumerate(ids) if n % 3 == 0}
    return vip.id, follower.id, acme - set(ids[:30]), set(ids[:30]) - acme


def test_a_streamed_rule_applies_after_its_commit_chunk_by_chunk(gw):
    vip, follower, joining, leaving = shop(gw)
    before = gw.events.last_sequence()
    saved = gw.groups.update(vip, rule=RULE, stream=True)
    assert saved.rule_version == 1
    assert moves(gw, vip, before) == []  # nothing moved in the rule's own transaction
    assert gw.groups.sweep_progress(vip) == (0, 120)
    assert gw.groups.sweep(vip, limit=50) == 50
    assert gw.groups.sweep_progress(vip) == (50, 120)
    assert fold_memberships(gw) == table(gw)  # a committed chunk: the fold holds
    while gw.groups.sweep(vip, limit=50) is not None:
        pass
    assert gw.groups.sweep_progress(vip) is None
    moved = moves(gw, vip, before)
    assert sorted(cid for kind, cid, *_ in moved if kind == ADDED) == sorted(joining)
    assert sorted(cid for kind, cid, *_ in moved if kind == REMOVED) == sorted(leaving)
    assert {(trigger, version) for _, _, trigger, version in moved} == {("rule_changed", 1)}
    assert members(gw, follower) == members(gw, vip)  # the rule reading VIP followed
    assert fold_memberships(gw) == table(gw) == smart_expected(gw)


def test_a_sweep_killed_mid_chunk_is_finished_by_the_next_process(gw, database_url, tmp_path):
    vip, follower, joining, leaving = shop(gw)
    before = gw.events.last_sequence()
    marker = tmp_path / "holding"
    worker = subprocess.Popen(
        [sys.executable, str(SWEEP_WORKER), database_url, vip, json.dumps(RULE), str(marker)],
        cwd=Path(__file__).parents[2],
    )
    try:
        wait_until(marker.exists)  # its third adding chunk is open, uncommitted
        worker.kill()  # SIGKILL
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    progress = gw.groups.sweep_progress(vip)
    assert progress is not None and 0 < progress[0] < 120  # killed mid-sweep
    assert gw.groups.get(vip).rule_version == 1
    half = moves(gw, vip, before)
    assert half and {cid for kind, cid, *_ in half if kind == ADDED} < joining
    assert fold_memberships(gw) == table(gw)  # what committed is whole chunks

    gw.start()  # the next process delivering events: its scheduler finishes the sweep
    wait_until(lambda: gw.groups.sweep_progress(vip) is None)
    moved = moves(gw, vip, before)
    added = [cid for kind, cid, *_ in moved if kind == ADDED]
    removed = [cid for kind, cid, *_ in moved if kind == REMOVED]
    assert sorted(added) == sorted(joining)  # each once
    assert sorted(removed) == sorted(leaving)
    assert {(trigger, version) for _, _, trigger, version in moved} == {("rule_changed", 1)}
    assert members(gw, follower) == members(gw, vip)
    assert fold_memberships(gw) == table(gw) == smart_expected(gw)


def test_a_streamed_rule_reading_time_ends_with_each_ones_next_flip(gw):
    ids = [gw.customers.create(f"c{n}@shop.test").id for n in range(30)]
    trial = gw.groups.create("Trial")
    gw.groups.update(trial.id, rule={"created_at": {"$gte": {"$ago": "14d"}}}, stream=True)
    assert gw.groups.sweep(trial.id, limit=25) == 25
    assert gw.groups.next_flips(trial.id) == []  # no row per customer while it streams
    while gw.groups.sweep(trial.id, limit=25) is not None:  # then the pass of the flips
        pass
    assert members(gw, trial.id) == set(ids)
    created = {c.id: c.created_at for c in gw.customers.list(limit=100).items}
    flips = dict(gw.groups.next_flips(trial.id, limit=100))
    assert flips == {cid: created[cid] + timedelta(days=14) for cid in ids}
    moved = moves(gw, trial.id, 0)
    assert sorted(cid for _, cid, *_ in moved) == sorted(ids)  # each joined once
    assert {trigger for _, _, trigger, _ in moved} == {"rule_changed"}
    assert fold_memberships(gw) == table(gw) == smart_expected(gw)
