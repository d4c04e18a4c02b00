"""Redis loses its data while a ``from_now`` subscriber's worker is down: nothing is skipped.

Real processes: a redis-server of the test's own (no persistence) that is shut down with
``SHUTDOWN NOSAVE`` and started again on the same port, a worker process
(``python -m groupwire.cli.redis_worker``) running the counting plugin's subscriber as
``from_now``, stopped with SIGTERM, and the relay in the test's process. ``from_now`` means
"from the subscriber's first registration", never "from whenever Redis came back".
"""

from __future__ import annotations

import signal

import pytest
import redis
from sqlalchemy import select

from groupwire.events.bus_tables import bus_progress

from .conftest import RedisServer, wait_until
from .test_faults import Fleet, base_env, counts, prepare


def progress_rows(gw, prefix: str) -> dict[int, int]:
    """The counter's saved progress per stream."""
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(bus_progress.c.stream, bus_progress.c.last_sequence).where(
                bus_progress.c.bus == prefix, bus_progress.c.subscriber == "counter"
            )
        )
        return {int(stream): int(last) for stream, last in rows}


def groups_ready(client: redis.Redis, streams: list[str]) -> bool:
    """Every stream has the counter's consumer group (the worker created them)."""
    try:
        return all(
            any(g["name"] in (b"counter", "counter") for g in client.xinfo_groups(key))
            for key in streams
        )
    except redis.ResponseError:  # no such key yet
        return False


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("first", ["relay_republishes_first", "worker_returns_first"])
def test_given_a_from_now_subscriber_whose_worker_is_down_when_redis_loses_its_data_and_both_come_back_then_every_event_since_its_registration_is_delivered(  # noqa: E501
    open_gw, pg_url, prefix, tmp_path, own_redis: RedisServer, first: str
):
    gw = open_gw(bus_url=own_redis.url)
    prepare(gw)
    gw.start()
    fleet = Fleet(tmp_path, base_env(pg_url, prefix, own_redis.url))
    streams = gw.bus_relay.bus.stream_keys
    try:
        # given a from_now subscriber, registered by its worker, that handled 5 events
        worker = fleet.worker(GROUPWIRE_TEST_FROM_NOW="1")
        wait_until(lambda: len(progress_rows(gw, prefix)) == len(streams), 60, "registered")
        for n in range(5):
            gw.groups.create(f"before {n}")
        wait_until(lambda: counts(gw)["handled"] >= 5, 60, "the first 5 were handled")
        # and whose worker stopped (SIGTERM) before 20 more events were published
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        for n in range(20):
            gw.groups.create(f"while down {n}")
        assert gw.drain(30)
        saved = progress_rows(gw, prefix)
        published = gw.events.last_sequence()
        window = sum(1 for e in gw.events.list(limit=None) if e.sequence > min(saved.values()))

        # when Redis loses every key and comes back on the same port
        own_redis.shutdown_nosave()
        if first == "worker_returns_first":
            gw.bus_relay.stop()
        own_redis.start()
        client = redis.Redis.from_url(own_redis.url)
        if first == "relay_republishes_first":
            wait_until(
                lambda: gw.bus_relay.bus.read_marker() == published, 30, "the relay republished"
            )
            fleet.worker(GROUPWIRE_TEST_FROM_NOW="1")
        else:
            fleet.worker(GROUPWIRE_TEST_FROM_NOW="1")
            wait_until(lambda: groups_ready(client, streams), 60, "the worker made its groups")
            assert gw.bus_relay.bus.read_marker() is None  # nothing republished yet
            gw.bus_relay.start()
        # and 5 more events follow once the worker is back
        bus = gw.bus_relay.bus
        wait_until(lambda: client.zcard(bus.workers_key) > 0, 60, "the worker is back")
        for n in range(5):
            gw.groups.create(f"after {n}")
        total = gw.events.last_sequence()
        wait_until(
            lambda: min(progress_rows(gw, prefix).values()) >= total,
            60,
            "the worker's saved progress reached the last event",
        )
        result = counts(gw)
        client.close()
    finally:
        fleet.close()

    # then every event since the registration was delivered before its progress passed it
    assert total == 30
    assert gw.bus_relay.resets >= 1
    assert result["handled"] == result["events"] == total
    assert result["missing"] == 0
    assert result["violations"] == 0
    # duplicates only from what was published after the last saved progress
    assert result["redelivered"] <= window
