"""Fault tests with real processes, PostgreSQL and Redis: nothing lost, nothing handled twice.

API servers are ``uvicorn --factory groupwire.api.asgi:create_app_from_env``; workers are
``python -m groupwire.cli.redis_worker --subscriber counter`` with the counting plugin of
``counting_plugin.py``, which records each event it handles once (dedupe by event id) and
notes any event of a group handled after a later one of the same group.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from groupwire.auth.keys import create_key
from groupwire.domain.errors import NotFound, Unavailable
from groupwire.hooks import hookimpl
from groupwire.store import event_log

from . import counting_plugin
from .conftest import REDIS_URL, child_env, free_port, spawn, wait_until

LEASE = {"GROUPWIRE_BUS_LEASE_SECONDS": "1.5", "GROUPWIRE_BUS_CLAIM_IDLE_SECONDS": "1.0"}


def prepare(gw) -> None:
    with gw.engine.begin() as conn:
        for statement in counting_plugin.TABLES.split(";"):
            if statement.strip():
                conn.execute(text(statement))


MEMBERSHIP_TYPES = ("customer_group.customer_added", "customer_group.customer_removed")


def counts(gw) -> dict[str, int]:
    """The event log (read through the store, which expands bulk runs) against what the
    counting plugin recorded."""
    with gw.engine.connect() as conn:
        one = lambda sql: int(conn.execute(text(sql)).scalar() or 0)  # noqa: E731
        events = event_log.list_events(conn, limit=None)
        handled = {
            row[0]: (int(row[1]), row[2])
            for row in conn.execute(text("SELECT event_id, sequence, partition FROM scale_handled"))
        }
        return {
            "events": len(events),
            "handled": one("SELECT count(*) FROM scale_handled"),
            "missing": sum(1 for e in events if e.id not in handled),
            "wrong_sequence": sum(
                1 for e in events if e.id in handled and handled[e.id] != (e.sequence, e.partition)
            ),
            "violations": one("SELECT count(*) FROM scale_order_violation"),
            "redelivered": one("SELECT count(*) FROM scale_redelivery"),
            "changes": sum(1 for e in events if e.type in MEMBERSHIP_TYPES),
        }


class Fleet:
    """Worker and API server processes of one test; everything is killed at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.workers: list[subprocess.Popen[bytes]] = []
        self.servers: list[tuple[subprocess.Popen[bytes], str]] = []
        self.started = 0

    def worker(self, **extra: str) -> subprocess.Popen[bytes]:
        env = child_env(**self.env, GROUPWIRE_PLUGINS="tests.scale.counting_plugin", **extra)
        self.started += 1
        log = self.tmp_path / f"worker-{self.started}.log"
        args = ["-m", "groupwire.cli.redis_worker", "--subscriber", "counter"]
        process = spawn(args, env, log)
        self.workers.append(process)
        return process

    def server(self) -> str:
        port = free_port()
        args = [
            "-m", "uvicorn", "--factory", "groupwire.api.asgi:create_app_from_env",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
        process = spawn(args, child_env(**self.env), self.tmp_path / f"server-{port}.log")
        url = f"http://127.0.0.1:{port}"
        self.servers.append((process, url))
        return url

    def wait_servers(self) -> None:
        for process, url in self.servers:
            wait_until(lambda url=url, p=process: _healthy(url, p), 60, f"{url} is up")

    def close(self) -> None:
        for process in [*self.workers, *(p for p, _ in self.servers)]:
            if process.poll() is None:
                process.kill()
            process.wait(10)


def _healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the API server exited while starting"
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def base_env(pg_url: str, prefix: str, bus_url: str = REDIS_URL) -> dict[str, str]:
    return {
        "GROUPWIRE_DATABASE_URL": pg_url,
        "GROUPWIRE_BUS_URL": bus_url,
        "GROUPWIRE_BUS_PREFIX": prefix,
        "GROUPWIRE_LOAD_ENTRY_POINTS": "false",
        "GROUPWIRE_AUTO_MIGRATE": "false",
        "GROUPWIRE_RELAY_POLL_INTERVAL": "0.1",
        "GROUPWIRE_DELIVERY_RETRY_BASE": "0.01",
        **LEASE,
    }


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_given_two_api_servers_and_three_workers_when_20000_membership_changes_arrive_and_a_worker_is_killed_20_times_then_each_event_is_handled_exactly_once_in_group_order(  # noqa: E501
    open_gw, pg_url, prefix, tmp_path
):
    gw = open_gw()
    prepare(gw)
    _key, secret = create_key(gw.engine, "scale test", ["admin"])
    customers = [gw.customers.create(f"load{i}@example.com").id for i in range(60)]
    groups = [gw.groups.create(f"load group {g}").id for g in range(40)]
    fleet = Fleet(tmp_path, base_env(pg_url, prefix))
    try:
        urls = [fleet.server(), fleet.server()]
        for _ in range(3):
            fleet.worker()
        fleet.wait_servers()

        wanted_changes, per_request, threads = 20_000, 40, 4
        sent = [0] * threads
        failures: list[str] = []
        load_done = threading.Event()

        def load(index: int) -> None:
            rng = random.Random(index)
            mine = groups[index::threads]
            members: dict[str, set[str]] = {g: set() for g in mine}
            headers = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(timeout=30, headers=headers) as client:
                n = 0
                while sent[index] < wanted_changes // threads:
                    group = mine[n % len(mine)]
                    n += 1
                    inside = members[group]
                    outside = [c for c in customers if c not in inside]
                    remove = rng.sample(sorted(inside), min(len(inside), per_request // 2))
                    add = rng.sample(outside, per_request - len(remove))
                    url = urls[n % 2]
                    body = {"add": add, "remove": remove}
                    response = client.post(
                        f"{url}/admin/customer-groups/{group}/customers", json=body
                    )
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                        return
                    inside.difference_update(remove)
                    inside.update(add)
                    sent[index] += len(add) + len(remove)

        loaders = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
        started = time.monotonic()
        for thread in loaders:
            thread.start()

        kills = kills_during_load = 0
        rng = random.Random(7)
        while kills < 20:
            time.sleep(rng.uniform(0.6, 1.2))
            victim = rng.choice([w for w in fleet.workers if w.poll() is None])
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            fleet.workers.remove(victim)
            fleet.worker()
            kills += 1
            kills_during_load += any(t.is_alive() for t in loaders)
        for thread in loaders:
            thread.join(120)
        load_done.set()
        assert failures == []

        loaded = time.monotonic() - started
        total = gw.events.last_sequence()
        # A bound on liveness, not a speed target: on a loaded 2-core machine the 20 restarted
        # workers take minutes to catch up (their progress keeps moving all along).
        wait_until(lambda: counts(gw)["handled"] >= total, 360, "every event was handled")
        drained = time.monotonic() - started
        result = counts(gw)
    finally:
        fleet.close()

    print(f"\nload sent in {loaded:.1f}s, every event handled after {drained:.1f}s")
    assert sum(sent) >= 20_000
    assert result["changes"] == sum(sent)
    assert result["events"] == total
    assert result["handled"] == total
    assert result["missing"] == 0
    assert result["wrong_sequence"] == 0
    assert result["violations"] == 0
    assert kills == 20
    print(
        f"\n{sum(sent)} membership changes, {total} events, {kills} kills "
        f"({kills_during_load} while the load was being sent), "
        f"{result['redelivered']} redeliveries absorbed by the dedupe"
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_given_redis_restarted_mid_run_with_nothing_on_disk_then_the_outbox_republishes_and_no_event_is_lost(  # noqa: E501
    open_gw, pg_url, prefix, tmp_path, own_redis
):
    gw = open_gw(bus_url=own_redis.url)
    prepare(gw)
    gw.start()
    fleet = Fleet(tmp_path, base_env(pg_url, prefix, own_redis.url))
    customers = [gw.customers.create(f"r{i}@example.com").id for i in range(40)]
    groups = [gw.groups.create(f"restart group {g}").id for g in range(10)]
    try:
        for _ in range(2):
            fleet.worker()

        def churn(rounds: int) -> None:
            for r in range(rounds):
                for g in groups:
                    ids = customers[(r * 7) % 20 :][:20]
                    if r % 2 == 0:
                        gw.groups.add_customers(g, ids)
                    else:
                        gw.groups.remove_customers(g, ids)

        churn(4)
        wait_until(lambda: counts(gw)["handled"] > 200, 60, "the workers started handling")
        before = gw.events.last_sequence()
        old_run_id = redis.Redis.from_url(own_redis.url).info("server")["run_id"]
        own_redis.restart()
        # A new server that started empty (the relay and workers write again at once, so
        # the key count right after the restart proves nothing).
        info = redis.Redis.from_url(own_redis.url).info()
        assert info["run_id"] != old_run_id
        assert info["rdb_last_load_keys_loaded"] == 0
        churn(4)
        total = gw.events.last_sequence()
        wait_until(lambda: counts(gw)["handled"] >= total, 90, "every event was handled")
        result = counts(gw)
    finally:
        fleet.close()

    assert total > before > 0
    assert gw.bus_relay.resets >= 1
    assert result["handled"] == result["events"] == total
    assert result["missing"] == 0
    assert result["violations"] == 0


class BlockingHook:
    """Holds a membership transaction open until the test has cut its connection."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context) -> None:  # type: ignore[no-untyped-def]
        self.inside.set()
        self.release.wait(30)


def test_given_the_postgresql_connection_dropped_mid_transaction_then_the_caller_gets_an_error_and_no_event_exists_anywhere(  # noqa: E501
    open_gw, pg_url, redis_client
):
    hook = BlockingHook()
    victim_url = pg_url + "&application_name=gw_victim"
    gw = open_gw()
    group = gw.groups.create("VIP")
    customer = gw.customers.create("v@example.com")
    gw.bus_relay.publish_pending()
    before = gw.events.last_sequence()
    writer = open_gw(plugins=[hook], database_url=victim_url)
    outcome: list[BaseException] = []

    def add() -> None:
        try:
            writer.groups.add_customers(group.id, [customer.id])
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=add)
    thread.start()
    assert hook.inside.wait(30)
    with gw.engine.connect() as conn:
        killed = (
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'gw_victim' AND state LIKE 'idle in transaction%'"
                )
            )
            .scalars()
            .all()
        )
    hook.release.set()
    thread.join(30)

    assert killed == [True]
    # reported as "nothing written", the driver's error as its cause
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable)
    assert isinstance(outcome[0].__cause__, DBAPIError)
    assert gw.events.last_sequence() == before
    assert gw.groups.members(group.id) == []
    assert gw.bus_relay.publish_pending() == 0
    published = sum(redis_client.xlen(key) for key in gw.bus_relay.bus.stream_keys)
    assert published == before
    # the next change goes through on a fresh connection
    hook.release.set()
    writer.groups.add_customers(group.id, [customer.id])
    assert [c.id for c in gw.groups.members(group.id)] == [customer.id]
    assert gw.events.last_sequence() == before + 1
    with pytest.raises(NotFound):
        gw.groups.get("cusgroup_missing")


@pytest.mark.timeout(120)
def test_given_a_worker_handling_slow_events_when_it_gets_sigterm_then_it_finishes_in_flight_work_and_exits_cleanly(  # noqa: E501
    open_gw, pg_url, prefix, tmp_path
):
    gw = open_gw()
    prepare(gw)
    gw.start()
    fleet = Fleet(tmp_path, base_env(pg_url, prefix))
    try:
        slow = fleet.worker(GROUPWIRE_TEST_HANDLER_SLEEP="0.05")
        group = gw.groups.create("slow")
        ids = [gw.customers.create(f"s{i}@example.com").id for i in range(60)]
        gw.groups.add_customers(group.id, ids)
        wait_until(lambda: counts(gw)["handled"] >= 10, 60, "the slow worker is handling")
        slow.send_signal(signal.SIGTERM)
        code = slow.wait(30)
        handled_by_slow = counts(gw)["handled"]
        fleet.worker()  # picks up what the stopped worker returned
        total = gw.events.last_sequence()
        wait_until(lambda: counts(gw)["handled"] >= total, 60, "every event was handled")
        result = counts(gw)
    finally:
        fleet.close()

    log = (tmp_path / "worker-1.log").read_text()
    assert code == 0
    assert "stopped:" in log
    assert 10 <= handled_by_slow < total
    assert result["handled"] == total and result["missing"] == 0
    assert result["violations"] == 0
    assert result["redelivered"] == 0  # in-flight work was finished and acknowledged, not redone
