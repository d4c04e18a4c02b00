"""Publishing into Medusa's event bus: a plain Medusa subscriber runs on each Groupwire event.

Medusa is real (the harness: 2.21.2 with its Redis event bus and the subscriber file
``src/subscribers/record.ts``, which appends every event it runs on to a JSON-lines file);
changes are made through Medusa's Admin API, captured from its database and published into its
BullMQ queue. The recorder hears Medusa's own ``customer.*`` events too: what Groupwire
published is told apart by ``metadata.source == "groupwire"`` and its event ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from bullmq import Queue

from groupwire import Groupwire
from groupwire.domain import events as ev
from groupwire.domain.models import Event
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa.publish import (
    SUBSCRIBER,
    MedusaPublisher,
    PublishOptions,
    publish_to_medusa,
)
from tests.medusa.capturing import (
    Captured,
    create_group,
    drop_slot,
    new_names,
    ok,
    wal_mark,
)
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa

GROUPWIRE_REDIS = os.environ.get("GROUPWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
Recorded = dict[str, Any]


def create_customer(medusa: MedusaServer) -> str:
    body = {"email": f"{uuid.uuid4().hex[:10]}@shop.example"}
    return str(ok(medusa.client.post("/admin/customers", json=body))["customer"]["id"])


def change_members(medusa: MedusaServer, group_id: str, **body: list[str]) -> None:
    ok(medusa.client.post(f"/admin/customer-groups/{group_id}/customers", json=body))


def published(medusa: MedusaServer, event_ids: Iterable[str]) -> list[Recorded]:
    """What Medusa's recording subscriber ran on, of the jobs Groupwire added for these events."""
    wanted = set(event_ids)
    return [
        record
        for record in medusa.recorded()
        if (record.get("metadata") or {}).get("source") == "groupwire"
        and record["metadata"].get("event_id") in wanted
    ]


def queue_busy(medusa: MedusaServer) -> int:
    """Jobs Medusa's worker has yet to finish (waiting, prioritized, active, delayed)."""

    async def count() -> int:
        queue = Queue(
            medusa.queue_name, {"connection": medusa.redis_url, "prefix": medusa.queue_prefix}
        )
        try:
            counts = await queue.getJobCounts("waiting", "prioritized", "active", "delayed")
            return sum(int(n) for n in counts.values())
        finally:
            await queue.close()

    return asyncio.run(count())


def settled(medusa: MedusaServer, event_ids: list[str], timeout: float = 60) -> list[Recorded]:
    """Every job of these events has run (at least once) and Medusa's queue is idle: what
    the recorder has then is all it will get."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {r["metadata"]["event_id"] for r in published(medusa, event_ids)}
        if seen >= set(event_ids) and queue_busy(medusa) == 0:
            time.sleep(0.3)  # a job added just now would be visible in the counts already
            if queue_busy(medusa) == 0:
                return published(medusa, event_ids)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(seen)} of {len(event_ids)} events reached Medusa's subscriber in "
                f"{timeout} s:\n{medusa.log_tail()}"
            )
        time.sleep(0.1)


def as_published(events: list[Event]) -> list[tuple[str, dict[str, Any], str]]:
    return [(e.type, e.data, e.id) for e in events]


def as_recorded(records: list[Recorded]) -> list[tuple[str, dict[str, Any], str]]:
    return [(r["name"], r["data"], r["metadata"]["event_id"]) for r in records]


# --- what Medusa's subscriber receives ---------------------------------------------------------


def test_given_publishing_when_groups_change_through_medusa_then_its_subscriber_runs_once_on_each_in_order(  # noqa: E501
    captured: Captured, medusa: MedusaServer
) -> None:
    publish_to_medusa(captured.gw, PublishOptions(redis_url=medusa.redis_url))
    mark = captured.mark()

    group = create_group(medusa, metadata={"tier": "gold"})
    ada, bob, eve = (create_customer(medusa) for _ in range(3))
    new_name = f"Renamed {uuid.uuid4().hex[:6]}"
    ok(
        medusa.client.post(
            f"/admin/customer-groups/{group['id']}",
            json={"name": new_name, "metadata": {"tier": "platinum"}},
        )
    )
    change_members(medusa, group["id"], add=[ada, bob, eve])
    change_members(medusa, group["id"], remove=[eve])
    assert medusa.client.delete(f"/admin/customer-groups/{group['id']}").status_code == 200
    captured.sync()
    captured.gw.deliver_pending()

    events = captured.gw.events.list(after=mark, limit=None)
    group_events = [e for e in events if e.type.startswith("customer_group.")]
    customer_events = [e for e in events if e.type.startswith("customer.")]
    records = settled(medusa, [e.id for e in group_events])

    assert [e.type for e in group_events] == [
        ev.GROUP_CREATED,
        ev.GROUP_UPDATED,
        ev.GROUP_METADATA_UPDATED,
        *[ev.CUSTOMER_ADDED] * 3,
        ev.CUSTOMER_REMOVED,
        *[ev.CUSTOMER_REMOVED] * 2,
        ev.GROUP_DELETED,
    ]
    assert as_recorded(records) == as_published(group_events)  # once each, in order
    first = records[0]["metadata"]
    assert {k: first[k] for k in ("source", "object", "action", "sequence", "subject")} == {
        "source": "groupwire",
        "object": "customer_group",
        "action": "created",
        "sequence": group_events[0].sequence,
        "subject": group["id"],
    }
    assert first["created_at"].startswith(group_events[0].time.strftime("%Y-%m-%dT%H:%M:%S"))
    # Groupwire's customer.* events are not published by default: Medusa emits its own.
    assert [e.type for e in customer_events] == [ev.CUSTOMER_CREATED] * 3
    assert published(medusa, [e.id for e in customer_events]) == []


def test_given_customer_events_asked_for_then_they_are_published_too(
    captured: Captured, medusa: MedusaServer
) -> None:
    publish_to_medusa(
        captured.gw, PublishOptions(redis_url=medusa.redis_url, events=("customer.created",))
    )
    mark = captured.mark()

    create_group(medusa)
    create_customer(medusa)
    captured.sync()
    captured.gw.deliver_pending()

    events = captured.gw.events.list(after=mark, limit=None)
    [customer_created] = [e for e in events if e.type == ev.CUSTOMER_CREATED]
    records = settled(medusa, [customer_created.id])
    assert as_recorded(records) == as_published([customer_created])
    assert published(medusa, [e.id for e in events if e.type == ev.GROUP_CREATED]) == []


# --- crashes and duplicates ------------------------------------------------------------------


def test_given_jobs_added_but_the_checkpoint_not_saved_when_publishing_resumes_then_none_runs_twice(
    captured: Captured, medusa: MedusaServer
) -> None:
    publisher = publish_to_medusa(captured.gw, PublishOptions(redis_url=medusa.redis_url))
    mark = captured.mark()
    group = create_group(medusa)
    change_members(medusa, group["id"], add=[create_customer(medusa) for _ in range(3)])
    captured.sync()
    pending = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)
    assert len(pending) == 4

    # What a crash right after the add leaves: the jobs are in Medusa's queue (and have run),
    # the subscriber's checkpoint has not moved.
    publisher.handle_events(pending)
    settled(medusa, [e.id for e in pending])
    captured.gw.deliver_pending()  # the restart: published again from the checkpoint

    records = settled(medusa, [e.id for e in pending])
    assert as_recorded(records) == as_published(pending)
    assert captured.gw.relay.lag()[SUBSCRIBER] == 0


def test_given_completed_jobs_not_kept_then_a_re_added_event_runs_again(
    captured: Captured, medusa: MedusaServer
) -> None:
    """The counterpart of the test above: without the kept completed job, BullMQ has nothing
    to recognise the re-add by, so Medusa's subscriber runs twice."""
    publisher = publish_to_medusa(
        captured.gw, PublishOptions(redis_url=medusa.redis_url, keep_completed_seconds=0)
    )
    mark = captured.mark()
    create_group(medusa)
    captured.sync()
    [created] = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)

    publisher.handle_events([created])
    settled(medusa, [created.id])
    publisher.handle_events([created])

    deadline = time.monotonic() + 30
    while len(published(medusa, [created.id])) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert as_recorded(published(medusa, [created.id])) == as_published([created]) * 2


def test_given_a_dedup_window_when_it_has_passed_then_completed_jobs_are_removed(
    captured: Captured, medusa: MedusaServer
) -> None:
    """``removeOnComplete: {age}`` as Medusa's BullMQ 5.13 worker applies it: a completed job
    is removed once it is older than the window and another job of ours completes, so Redis
    does not keep every event forever."""
    publisher = publish_to_medusa(
        captured.gw, PublishOptions(redis_url=medusa.redis_url, keep_completed_seconds=1)
    )
    mark = captured.mark()
    create_group(medusa)
    create_group(medusa)
    captured.sync()
    first, second = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)
    client = redis.Redis.from_url(medusa.redis_url)
    job_key = f"{medusa.queue_prefix}:{medusa.queue_name}:{first.id}"
    try:
        publisher.handle_events([first])
        settled(medusa, [first.id])
        kept = client.exists(job_key)
        time.sleep(1.5)
        publisher.handle_events([second])
        settled(medusa, [second.id])
        removed = not client.exists(job_key)
    finally:
        client.close()

    assert kept and removed


# --- Medusa's Redis losing its data -----------------------------------------------------------


def jobs_held(medusa: MedusaServer, event_ids: Iterable[str]) -> int:
    """How many of these events have a job in Medusa's Redis."""
    client = redis.Redis.from_url(medusa.redis_url)
    try:
        return sum(
            int(client.exists(f"{medusa.queue_prefix}:{medusa.queue_name}:{event_id}"))
            for event_id in event_ids
        )
    finally:
        client.close()


def test_given_jobs_medusa_has_not_run_when_its_redis_loses_its_data_then_they_are_published_again_and_each_runs_once(  # noqa: E501
    captured: Captured, medusa: MedusaServer, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = publish_to_medusa(
        captured.gw, PublishOptions(redis_url=medusa.redis_url, check_seconds=0.2)
    )
    mark = captured.mark()
    for _ in range(20):
        create_group(medusa)
    captured.sync()
    events = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)
    ids = [e.id for e in events]
    assert len(events) == 20

    caplog.set_level(logging.WARNING, logger="groupwire.medusa.publish")
    with medusa.stopped():  # Medusa's worker consumes nothing meanwhile
        captured.gw.start()  # the relay publishes; the publisher checks Medusa's Redis
        wait_for(lambda: publisher.published == 20, 60, "the 20 jobs added")
        held_before_loss = jobs_held(medusa, ids)
        medusa.lose_redis_data()  # SHUTDOWN NOSAVE, started again empty
        wait_for(lambda: publisher.republished > 0, 60, "the lost jobs added again")
    # Medusa is running again, on the Redis that lost everything but what was re-added.
    records = settled(medusa, ids, timeout=120)

    assert held_before_loss == 20
    assert captured.gw.relay.lag()[SUBSCRIBER] == 0  # the checkpoint had moved on
    assert as_recorded(records) == as_published(events)  # all 20, once each, in order
    warnings = [r.getMessage() for r in caplog.records if "lost data" in r.getMessage()]
    assert len(warnings) == 1
    assert f"sequences {events[0].sequence} to {events[-1].sequence}" in warnings[0]


def test_given_jobs_medusa_finished_when_its_redis_is_checked_then_the_finished_position_moves_past_them(  # noqa: E501
    captured: Captured, medusa: MedusaServer
) -> None:
    """What bounds the re-publication after a loss: only jobs not known to be finished."""
    publisher = publish_to_medusa(
        captured.gw, PublishOptions(redis_url=medusa.redis_url, check_seconds=0.1)
    )
    mark = captured.mark()
    for _ in range(3):
        create_group(medusa)
    captured.sync()
    events = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)

    captured.gw.start()
    settled(medusa, [e.id for e in events])
    wait_for(lambda: publisher.finished == events[-1].sequence, 30, "the finished position")

    assert publisher.republished == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GROUPWIRE_LOAD_ENTRY_POINTS": "false", "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-m", "groupwire.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_given_events_whose_jobs_medusa_lost_when_republish_runs_then_medusa_runs_each_once_in_order(  # noqa: E501
    captured: Captured, medusa: MedusaServer, store_url: str
) -> None:
    mark = captured.mark()
    for _ in range(5):
        create_group(medusa)
    captured.sync()
    events = captured.gw.events.list(after=mark, type="customer_group.*", limit=None)
    ids = [e.id for e in events]
    # The first two reached Medusa and ran; the jobs of the other three were lost.
    publisher = MedusaPublisher(PublishOptions(redis_url=medusa.redis_url))
    try:
        publisher.handle_events(events[:2])
    finally:
        publisher.stop()
    settled(medusa, ids[:2])

    done = run_cli(
        *("--db", store_url, "medusa", "republish"),
        *("--from", str(events[0].sequence), "--medusa-redis", medusa.redis_url),
    )
    records = settled(medusa, ids)
    again = run_cli(
        *("--db", store_url, "medusa", "republish"),
        *("--from-time", events[3].time.isoformat(), "--medusa-redis", medusa.redis_url),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"Re-published 5 events of customer_group.* (sequences {events[0].sequence} to "
        f"{events[-1].sequence})" in done.stdout
    )
    assert "3 added, 2 already there" in done.stdout
    assert as_recorded(records) == as_published(events)  # once each, in order
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Re-published 2 events" in again.stdout and "0 added, 2 already there" in again.stdout
    assert as_recorded(settled(medusa, ids)) == as_published(events)


def start_capture_process(
    medusa: MedusaServer, store_url: str, slot: str, publication: str, log: Any
) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "groupwire.cli", "medusa", "capture"),
        *("--medusa-url", medusa.database_url, "--db", store_url),
        *("--slot", slot, "--publication", publication),
        *("--medusa-redis", medusa.redis_url),
    ]
    env = {**os.environ, "GROUPWIRE_LOAD_ENTRY_POINTS": "false"}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_given_the_capture_process_killed_while_publishing_when_restarted_then_each_job_runs_once_in_order(  # noqa: E501
    medusa: MedusaServer, store_url: str, tmp_path: Path
) -> None:
    slot, publication = new_names()
    count = 3000
    customer_ids = [f"cus_pub{uuid.uuid4().hex}" for _ in range(count)]
    with (
        psycopg.connect(slots._libpq_url(medusa.database_url), autocommit=True) as conn,
        conn.cursor() as cursor,
    ):
        cursor.executemany(
            "INSERT INTO customer (id, email) VALUES (%s, %s)",
            [(cid, f"{cid}@bulk.example") for cid in customer_ids],
        )
    group = create_group(medusa)
    log_path = tmp_path / "capture.log"
    log = log_path.open("ab")
    gw = Groupwire.open(store_url, load_entry_points=False, plugins=[])
    process = start_capture_process(medusa, store_url, slot, publication, log)

    def recorded_adds() -> list[Recorded]:
        return [
            r
            for r in medusa.recorded()
            if r["name"] == ev.CUSTOMER_ADDED
            and (r.get("metadata") or {}).get("source") == "groupwire"
            and r["data"].get("group_id") == group["id"]
        ]

    try:
        wait_for(lambda: b"Publishing" in log_path.read_bytes(), 60, "capture start")
        change_members(medusa, group["id"], add=customer_ids)
        wait_for(lambda: len(recorded_adds()) > 0, 60, "the first job at Medusa's subscriber")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        seen_when_killed = len(recorded_adds())

        process = start_capture_process(medusa, store_url, slot, publication, log)
        wait_for(
            lambda: len({r["data"]["customer_id"] for r in recorded_adds()}) >= count,
            180,
            "every job",
        )
        events = gw.events.list(type=ev.CUSTOMER_ADDED, limit=None)
        records = settled(medusa, [e.id for e in events])
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()
        gw.close()
        drop_slot(medusa.database_url, slot, publication)

    assert seen_when_killed > 0
    assert len(events) == count
    doubled = {
        k: n for k, n in Counter(r["metadata"]["event_id"] for r in records).items() if n > 1
    }
    assert doubled == {}
    assert as_recorded(records) == as_published(events)


# --- the Redis Streams bus: publishing runs in the workers -------------------------------------


def test_given_groupwires_redis_bus_then_the_publish_plugin_publishes_from_the_worker(
    medusa: MedusaServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"gw:test:{uuid.uuid4().hex[:10]}:"
    monkeypatch.setenv("GROUPWIRE_MEDUSA_REDIS_URL", medusa.redis_url)
    gw = Groupwire.open(
        store_url,
        load_entry_points=False,
        plugins=["groupwire.medusa.publish"],
        bus_url=GROUPWIRE_REDIS,
        bus_prefix=prefix,
        relay_poll_interval=0.05,
    )
    slot, publication = new_names()
    capture = MedusaCapture(
        gw.service,
        CaptureOptions(medusa_url=medusa.database_url, slot=slot, publication=publication),
    )
    bus = redis.Redis.from_url(GROUPWIRE_REDIS)
    worker = None
    try:
        capture.install()
        gw.start()  # the relay publishes onto Groupwire's streams
        worker = gw.worker().start()  # the worker runs the subscribers: ours among them
        group = create_group(medusa)
        customers = [create_customer(medusa) for _ in range(3)]
        change_members(medusa, group["id"], add=customers)
        capture.catch_up(wal_mark(medusa.database_url))
        events = gw.events.list(type="customer_group.*", limit=None)

        records = settled(medusa, [e.id for e in events])
    finally:
        if worker is not None:
            worker.stop()
        capture.close()
        drop_slot(medusa.database_url, slot, publication)
        gw.close()
        keys = list(bus.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            bus.delete(*keys)
        bus.close()

    assert [e.type for e in events] == [ev.GROUP_CREATED, *[ev.CUSTOMER_ADDED] * 3]
    assert as_recorded(records) == as_published(events)


def test_the_publish_benchmark_runs_to_its_report(medusa: MedusaServer, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            *(sys.executable, str(root / "benchmarks" / "medusa_publish.py"), "--customers", "50"),
            *("--base-url", medusa.base_url, "--api-key", medusa.api_key),
            *("--medusa-db", medusa.database_url, "--medusa-redis", medusa.redis_url),
            *("--recorded", str(medusa.events_path)),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "last job run by Medusa's subscriber" in done.stdout
