"""The publisher noticing that Medusa's Redis lost its jobs, on a real Redis and BullMQ.

The queue lives on the test Redis under a key prefix of the test's own; a loss is what it
leaves of that queue: every key under the prefix gone (a restart without persistence), or a
marker and jobs from earlier (a restore). Jobs are finished by a real BullMQ worker (the
Python client's). tests/medusa/test_publish.py reproduces a loss with Medusa 2.21.2 itself,
its Redis shut down without saving.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from bullmq import Worker

from groupwire import Groupwire
from groupwire.domain.models import Event
from groupwire.medusa.publish import (
    MARKER,
    MedusaPublisher,
    PublishOptions,
    publish_to_medusa,
)

REDIS_URL = os.environ.get("GROUPWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "events-queue"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"gw-test-loss-{uuid.uuid4().hex[:10]}"
    yield name
    lose_everything(name)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield connection
    connection.close()


def lose_everything(prefix: str) -> None:
    """What a Redis restarted without persistence leaves of the queue: nothing."""
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(connection.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            connection.delete(*keys)
    finally:
        connection.close()


class Store:
    """A Groupwire store (SQLite file) that can be opened again, as a restarted process does."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.url = f"sqlite:///{path / 'groupwire.db'}"
        self.options = PublishOptions(redis_url=REDIS_URL, prefix=prefix, check_seconds=60)

    @contextmanager
    def publishing(self) -> Iterator[tuple[Groupwire, MedusaPublisher]]:
        gw = Groupwire.open(self.url, load_entry_points=False, plugins=[])
        try:
            yield gw, publish_to_medusa(gw, self.options)
        finally:
            gw.close()


def groups_created(gw: Groupwire, count: int) -> list[Event]:
    mark = gw.events.last_sequence()
    for _ in range(count):
        gw.groups.create(f"Group {uuid.uuid4().hex[:8]}")
    return gw.events.list(after=mark, type="customer_group.*", limit=None)


def job_ids(client: redis.Redis, prefix: str) -> list[str]:
    """The jobs waiting in the queue (Medusa's priority: the prioritized set), oldest first."""
    return [str(i) for i in client.zrange(f"{prefix}:{QUEUE}:prioritized", 0, -1)]


def run_jobs(prefix: str, count: int) -> list[str]:
    """A BullMQ worker runs the ``count`` jobs waiting, then stops."""

    async def run() -> list[str]:
        done: list[str] = []

        async def process(job: Any, token: str) -> None:
            done.append(job.id)

        worker = Worker(QUEUE, process, {"connection": REDIS_URL, "prefix": prefix})
        try:
            async with asyncio.timeout(30):
                while len(done) < count or not finished(prefix, done):
                    await asyncio.sleep(0.05)
        finally:
            await worker.close()
        return done

    return asyncio.run(run())


def finished(prefix: str, ids: list[str]) -> bool:
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        return all(connection.hget(f"{prefix}:{QUEUE}:{i}", "finishedOn") for i in ids)
    finally:
        connection.close()


def loss_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost data" in r.getMessage()]


@pytest.fixture
def store(tmp_path: Path, prefix: str) -> Store:
    return Store(tmp_path, prefix)


# --- a loss while the publisher runs ------------------------------------------------------


def test_given_jobs_not_run_when_the_queue_loses_everything_then_the_next_check_adds_them_again(
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, publisher):
        events = groups_created(gw, 3)
        gw.deliver_pending()
        before = job_ids(client, prefix)
        lose_everything(prefix)
        publisher.check()
        after = job_ids(client, prefix)

    assert before == [e.id for e in events]
    assert after == [e.id for e in events]
    [warning] = loss_warnings(caplog)
    assert "its marker is gone" in warning
    assert f"3 events of {prefix}:{QUEUE} not known to be finished" in warning
    assert f"sequences {events[0].sequence} to {events[-1].sequence}" in warning


def test_given_a_loss_then_it_is_noticed_before_the_next_batch_which_goes_in_after_the_lost_jobs(
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, _):
        lost = groups_created(gw, 2)
        gw.deliver_pending()
        lose_everything(prefix)
        later = groups_created(gw, 2)
        gw.deliver_pending()  # no check in between: the batch itself looks first

    assert job_ids(client, prefix) == [e.id for e in lost + later]
    assert len(loss_warnings(caplog)) == 1


def test_given_jobs_a_worker_finished_when_the_queue_loses_everything_then_only_the_unfinished_are_added_again(  # noqa: E501
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, publisher):
        done = groups_created(gw, 2)
        gw.deliver_pending()
        ran = run_jobs(prefix, 2)
        publisher.check()  # the finished position moves past the two
        waiting = groups_created(gw, 3)
        gw.deliver_pending()
        lose_everything(prefix)
        publisher.check()

    assert ran == [e.id for e in done]
    assert job_ids(client, prefix) == [e.id for e in waiting]
    [warning] = loss_warnings(caplog)
    assert f"sequences {waiting[0].sequence} to {waiting[-1].sequence}" in warning


def test_given_the_queue_intact_when_checked_then_nothing_is_added_and_nothing_logged(
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, publisher):
        events = groups_created(gw, 3)
        gw.deliver_pending()
        for _ in range(3):
            publisher.check()

    assert job_ids(client, prefix) == [e.id for e in events]
    assert publisher.republished == 0
    assert loss_warnings(caplog) == []


def test_given_a_restore_of_an_older_state_then_the_jobs_added_since_are_added_again_and_none_doubled(  # noqa: E501
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, publisher):
        kept = groups_created(gw, 2)
        gw.deliver_pending()
        snapshot = {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}:*")}
        since = groups_created(gw, 2)
        gw.deliver_pending()
        lose_everything(prefix)
        for key, value in snapshot.items():  # the restore: the state of two batches ago
            assert value is not None
            client.restore(key, 0, value)
        publisher.check()

    assert job_ids(client, prefix) == [e.id for e in kept + since]  # each once, in order
    [warning] = loss_warnings(caplog)
    assert f"its marker says {kept[-1].sequence}" in warning
    assert "(2 added again, 2 still there)" in warning


# --- a loss while the publisher was stopped --------------------------------------------------


def test_given_a_loss_while_the_publisher_was_stopped_when_it_starts_again_then_it_adds_the_unfinished_jobs_again(  # noqa: E501
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, _):
        events = groups_created(gw, 3)
        gw.deliver_pending()
    lose_everything(prefix)

    with store.publishing() as (gw, publisher):
        publisher.check()

    assert job_ids(client, prefix) == [e.id for e in events]
    [warning] = loss_warnings(caplog)
    assert f"sequences {events[0].sequence} to {events[-1].sequence}" in warning


def test_given_no_loss_while_the_publisher_was_stopped_when_it_starts_again_then_nothing_is_added(
    store: Store, prefix: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with store.publishing() as (gw, _):
        events = groups_created(gw, 3)
        gw.deliver_pending()
    run_jobs(prefix, 3)

    with store.publishing() as (gw, publisher):
        publisher.check()
        later = groups_created(gw, 1)
        gw.deliver_pending()
        publisher.check()

    assert job_ids(client, prefix) == [e.id for e in later]
    assert client.get(f"{prefix}:{QUEUE}:{MARKER}") == str(later[0].sequence)
    assert publisher.finished == events[-1].sequence
    assert loss_warnings(caplog) == []
