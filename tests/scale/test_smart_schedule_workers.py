"""Smart groups' time conditions with the Redis Streams bus: ``groupwire worker`` processes
run the scheduler; a trial ends at its moment, applied once whatever the number of workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.core.test_invariants import fold_memberships
from tests.scale.conftest import REDIS_URL, child_env, spawn, wait_until

REMOVED = "customer_group.customer_removed"


def worker_process(tmp_path: Path, pg_url: str, prefix: str, n: int):
    env = child_env(
        GROUPWIRE_DATABASE_URL=pg_url,
        GROUPWIRE_BUS_URL=REDIS_URL,
        GROUPWIRE_BUS_PREFIX=prefix,
        GROUPWIRE_LOAD_ENTRY_POINTS="false",
        GROUPWIRE_AUTO_MIGRATE="false",
        GROUPWIRE_PLUGINS="",
        GROUPWIRE_SMART_SCHEDULE_MAX_SLEEP="0.2",
    )
    return spawn(["-m", "groupwire.cli", "worker"], env, tmp_path / f"worker-{n}.log")


@pytest.mark.timeout(120)
def test_two_groupwire_workers_on_the_redis_bus_end_each_trial_once(
    open_gw, pg_url, prefix, tmp_path
):
    api = open_gw()  # an API server: commits and publishes, runs no scheduler (not started)
    workers = [worker_process(tmp_path, pg_url, prefix, n) for n in range(2)]
    try:
        trial = api.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "2s"}}})
        ids = [api.customers.create(f"c{n}@shop.test").id for n in range(8)]
        assert {c.id for c in api.groups.members(trial.id)} == set(ids)
        wait_until(lambda: not api.groups.members(trial.id), 30, "the workers end every trial")
        time.sleep(0.5)
    finally:
        for process in workers:
            process.terminate()
            process.wait(20)
    removed = [e for e in api.events.list(type=REMOVED, limit=None)]
    assert sorted(e.data["customer_id"] for e in removed) == sorted(ids)  # once each
    assert {e.data["trigger"] for e in removed} == {"schedule"}
    assert fold_memberships(api) == set()
