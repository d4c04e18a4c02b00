"""``groupwire medusa republish``: Groupwire's events from a point on, added to a BullMQ queue
again as the publisher adds them. Here the queue is on the test Redis under a prefix of the
test's own (no Medusa: tests/medusa/test_publish.py runs it against a real one)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from groupwire import Groupwire
from tests.cli.conftest import Invoke

REDIS_URL = os.environ.get("GROUPWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "events-queue"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A BullMQ key prefix of this test only, its keys deleted afterwards."""
    name = f"gw-test-republish-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_republish_adds_the_jobs_from_a_sequence_on_and_leaves_those_still_there(
    cli: Invoke, gw: Groupwire, database_url: str, prefix: str
) -> None:
    first = gw.groups.create("Gold")
    gw.customers.create("ann@example.com")  # customer.*: not published by default
    gw.groups.create("Silver")
    gw.groups.update(first.id, name="Platinum")
    events = gw.events.list(type="customer_group.*", limit=None)
    env = {"GROUPWIRE_MEDUSA_QUEUE_PREFIX": prefix}
    args = ("--db", database_url, "medusa", "republish", "--medusa-redis", REDIS_URL)

    later = cli(*args, "--from", events[1].sequence, env=env)
    everything = cli(*args, "--from", 1, env=env)

    assert later.exit_code == 0, later.output
    assert (
        f"Re-published 2 events of customer_group.* (sequences {events[1].sequence} to "
        f"{events[2].sequence})" in later.stdout
    )
    assert "2 added, 0 already there" in later.stdout
    assert everything.exit_code == 0, everything.output
    assert "Re-published 3 events" in everything.stdout
    assert "1 added, 2 already there" in everything.stdout
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        jobs = [client.hgetall(f"{prefix}:{QUEUE}:{e.id}") for e in events]
        queued = client.zrange(f"{prefix}:{QUEUE}:prioritized", 0, -1)
    finally:
        client.close()
    assert [job["name"] for job in jobs] == [e.type for e in events]
    assert [json.loads(job["data"])["data"] for job in jobs] == [e.data for e in events]
    assert json.loads(jobs[0]["data"])["metadata"]["event_id"] == events[0].id
    assert json.loads(jobs[0]["opts"])["priority"] == 100
    assert sorted(queued) == sorted(e.id for e in events)  # three jobs, none doubled


def test_republish_from_a_time_takes_the_events_of_that_time_on(
    cli: Invoke, gw: Groupwire, database_url: str, prefix: str
) -> None:
    gw.groups.create("Gold")
    gw.groups.create("Silver")
    second = gw.events.list(type="customer_group.*", limit=None)[1]
    env = {"GROUPWIRE_MEDUSA_QUEUE_PREFIX": prefix}

    result = cli(
        *("--db", database_url, "medusa", "republish", "--medusa-redis", REDIS_URL),
        *("--from-time", second.time.isoformat()),
        env=env,
    )

    assert result.exit_code == 0, result.output
    assert f"Re-published 1 events of customer_group.* (sequences {second.sequence} to" in (
        result.stdout
    )


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ((), "give either --from SEQUENCE or --from-time TIME"),
        (
            ("--from", "1", "--from-time", "2026-01-01T00:00:00Z"),
            "give either --from SEQUENCE or --from-time TIME",
        ),
        (("--from-time", "yesterday"), "expected an ISO 8601 time"),
    ],
)
def test_republish_needs_one_starting_point(
    cli: Invoke, database_url: str, prefix: str, choice: tuple[str, ...], message: str
) -> None:
    result = cli(
        *("--db", database_url, "medusa", "republish", "--medusa-redis", REDIS_URL),
        *choice,
        env={"GROUPWIRE_MEDUSA_QUEUE_PREFIX": prefix},
    )

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split())
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match=f"{prefix}:*")) == []
    finally:
        client.close()
