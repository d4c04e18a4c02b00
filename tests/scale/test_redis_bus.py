"""The Redis Streams bus in one process: relay, worker, retries, dead letters, reclaiming.

Real PostgreSQL and Redis; workers run in threads here (the process-level faults are in
test_faults.py).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

import pytest
import redis
from sqlalchemy import select

from groupwire.domain.models import Event
from groupwire.events.bus_tables import bus_progress
from groupwire.events.redis_bus import RedisBus, decode
from groupwire.events.worker import RedisWorker

from .conftest import delete_keys, wait_until


def make_memberships(gw, groups: int = 4, customers: int = 30) -> None:
    members = [gw.customers.create(f"c{i}@example.com") for i in range(customers)]
    for g in range(groups):
        group = gw.groups.create(f"group {g}")
        ids = [c.id for c in members]
        gw.groups.add_customers(group.id, ids[: customers // 2])
        gw.groups.update_customers(group.id, add=ids[customers // 2 :], remove=ids[:5])


def stream_entries(client: redis.Redis, bus: RedisBus) -> list[tuple[int, Event]]:
    out = []
    for n, key in enumerate(bus.stream_keys):
        for _entry_id, fields in client.xrange(key):
            out.append((n, decode(fields[b"e"])))
    return out


class Recorder:
    """A subscriber remembering what it saw, per partition, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.seen.append(event)

    def by_partition(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for event in self.seen:
            out[event.partition].append(event.sequence)
        return out


def test_given_committed_events_when_the_relay_publishes_then_each_is_in_its_partitions_stream_once_in_order(  # noqa: E501
    open_gw, redis_client
):
    gw = open_gw(bus_partitions=4)
    make_memberships(gw)
    last = gw.events.last_sequence()

    published = gw.bus_relay.publish_pending()
    gw.bus_relay.publish_pending()  # publishing again finds nothing new

    assert published == last
    entries = stream_entries(redis_client, gw.bus_relay.bus)
    assert sorted(e.sequence for _, e in entries) == list(range(1, last + 1))
    streams_of_partition: dict[str, set[int]] = defaultdict(set)
    for n, event in entries:
        streams_of_partition[event.partition].add(n)
    assert all(len(streams) == 1 for streams in streams_of_partition.values())
    for key in gw.bus_relay.bus.stream_keys:  # entry ids follow the sequence
        ids = [int(i.split(b"-")[0]) for i, _ in redis_client.xrange(key)]
        assert ids == sorted(ids)
    assert int(redis_client.get(gw.bus_relay.bus.marker_key)) == last
    assert gw.bus_relay.lag() == 0


def test_given_two_relays_racing_when_both_publish_then_every_event_is_published_by_exactly_one(
    open_gw, redis_client
):
    first, second = open_gw(bus_batch_size=20), open_gw(bus_batch_size=20)
    stop = threading.Event()

    def race(gw) -> None:
        while not stop.is_set():
            gw.bus_relay.publish_once()

    racers = [threading.Thread(target=race, args=(gw,)) for gw in (first, second)]
    for thread in racers:
        thread.start()
    try:
        make_memberships(first, groups=6, customers=40)
        wait_until(lambda: first.bus_relay.lag() == 0, 30, "both relays published everything")
    finally:
        stop.set()
        for thread in racers:
            thread.join(10)

    last = first.events.last_sequence()
    assert first.bus_relay.published + second.bus_relay.published == last
    assert first.bus_relay.published > 0 and second.bus_relay.published > 0
    sequences = [e.sequence for _, e in stream_entries(redis_client, first.bus_relay.bus)]
    assert sorted(sequences) == list(range(1, last + 1))


def test_given_a_worker_when_events_are_committed_then_each_subscriber_gets_each_event_once_in_group_order(  # noqa: E501
    open_gw,
):
    gw = open_gw()
    counter, auditor = Recorder(), Recorder()
    gw.subscribe("*", counter, name="counter")
    gw.subscribe("customer_group.customer_*", auditor, name="auditor")
    gw.start()
    workers = [gw.worker(subscribers=["counter", "auditor"]).start() for _ in range(2)]
    try:
        make_memberships(gw)
        last = gw.events.last_sequence()
        wait_until(lambda: len(counter.seen) >= last, 30, "the counter saw every event")
        wanted = [
            e for e in gw.events.list(limit=None) if e.type.startswith("customer_group.customer_")
        ]
        wait_until(lambda: len(auditor.seen) >= len(wanted), 30, "the auditor saw its events")
    finally:
        for worker in workers:
            worker.stop()

    assert sorted(e.sequence for e in counter.seen) == list(range(1, last + 1))
    assert sorted(e.id for e in auditor.seen) == sorted(e.id for e in wanted)
    for sequences in counter.by_partition().values():
        assert sequences == sorted(sequences)
    assert sum(w.delivered for w in workers) == last + len(wanted)
    original = {e.id: e for e in gw.events.list(limit=None)}
    assert all(original[e.id] == e for e in counter.seen)  # delivered as recorded


def test_given_a_subscriber_failing_three_times_when_delivered_then_the_fourth_attempt_succeeds(
    open_gw,
):
    gw = open_gw(delivery_max_attempts=5)
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    def flaky(event: Event) -> None:
        attempts[event.id] += 1
        if attempts[event.id] <= 3:
            raise RuntimeError(f"attempt {attempts[event.id]} fails")
        handled.append(event.id)

    gw.subscribe("customer_group.created", flaky, name="flaky")
    gw.start()
    worker = gw.worker(subscribers=["flaky"]).start()
    try:
        group = gw.groups.create("VIP")
        wait_until(lambda: handled == [gw.events.list()[0].id], 30, "the fourth attempt ran")
    finally:
        worker.stop()

    event = gw.events.list(type="customer_group.created")[0]
    assert event.subject == group.id
    assert attempts == {event.id: 4}
    assert handled == [event.id]
    assert worker.retries == 3 and worker.delivered == 1 and worker.dead_lettered == 0
    assert gw.dead_letters.list() == []


def test_given_a_subscriber_always_failing_when_attempts_run_out_then_it_is_dead_lettered_and_replay_delivers_it(  # noqa: E501
    open_gw,
):
    gw = open_gw(delivery_max_attempts=3)
    broken = threading.Event()
    broken.set()
    calls: Counter[str] = Counter()
    delivered: list[str] = []
    after: list[str] = []

    def picky(event: Event) -> None:
        calls[event.id] += 1
        if broken.is_set() and event.data.get("name") == "poison":
            raise ValueError("cannot handle poison")
        delivered.append(event.id)

    gw.subscribe("customer_group.created", picky, name="picky")
    gw.start()
    worker = gw.worker(subscribers=["picky"]).start()
    try:
        poison = gw.groups.create("poison")
        fine = gw.groups.create("fine")  # same subscriber, later event: not blocked forever
        wait_until(lambda: len(gw.dead_letters.list()) == 1, 30, "the poison is dead-lettered")
        wait_until(lambda: len(delivered) == 1, 30, "the next event was delivered")
        after.extend(delivered)
    finally:
        worker.stop()

    [letter] = gw.dead_letters.list()
    poison_event = gw.events.list(subject=poison.id)[0]
    fine_event = gw.events.list(subject=fine.id)[0]
    assert (letter.subscriber, letter.event_id, letter.attempts) == ("picky", poison_event.id, 3)
    assert "cannot handle poison" in letter.error
    assert after == [fine_event.id]
    assert calls[poison_event.id] == 3

    broken.clear()
    assert worker.replay_dead_letters() == (1, 0)
    assert delivered == [fine_event.id, poison_event.id]
    assert gw.dead_letters.list() == []
    assert len(gw.dead_letters.list(include_replayed=True)) == 1


def test_given_a_dead_workers_pending_entries_when_another_worker_takes_over_then_it_claims_and_handles_them_first(  # noqa: E501
    open_gw, redis_client
):
    gw = open_gw(bus_partitions=1, bus_lease_seconds=1.0, bus_claim_idle_seconds=0.5)
    recorder = Recorder()
    gw.subscribe("*", recorder, name="counter")
    make_memberships(gw, groups=2, customers=10)
    gw.bus_relay.publish_pending()
    bus = gw.bus_relay.bus
    # a worker that read half of the stream, never acknowledged, and died holding the lease
    redis_client.xgroup_create(bus.stream_keys[0], "counter", id="0", mkstream=True)
    taken = redis_client.xreadgroup("counter", "ghost", {bus.stream_keys[0]: ">"}, count=20)
    redis_client.set(bus.lease_key("counter", 0), "ghost", px=1000)
    assert len(taken[0][1]) == 20

    worker = gw.worker(subscribers=["counter"]).start()
    try:
        last = gw.events.last_sequence()
        wait_until(lambda: len(recorder.seen) >= last, 30, "every event was handled")
    finally:
        worker.stop()

    assert [e.sequence for e in recorder.seen] == list(range(1, last + 1))  # claimed ones first
    summary = redis_client.xpending(bus.stream_keys[0], "counter")
    assert summary["pending"] == 0


def test_given_redis_lost_every_key_when_the_relay_runs_again_then_what_was_not_confirmed_is_republished_and_nothing_is_lost(  # noqa: E501
    open_gw, redis_client, prefix
):
    gw = open_gw(bus_partitions=4)
    recorder = Recorder()
    gw.subscribe("*", recorder, name="counter")
    gw.start()
    worker = gw.worker(subscribers=["counter"], progress_interval=0.05).start()
    try:
        make_memberships(gw, groups=2, customers=10)
        first = gw.events.last_sequence()
        wait_until(lambda: len(recorder.seen) >= first, 30, "the first events were handled")
        wait_until(lambda: _confirmed(gw, prefix) >= first, 30, "the worker confirmed its progress")
        worker.stop()
        delete_keys(redis_client, prefix)  # Redis restarted with nothing on disk
        make_memberships_more(gw)
        worker = gw.worker(subscribers=["counter"]).start()
        last = gw.events.last_sequence()
        wait_until(
            lambda: {e.sequence for e in recorder.seen} == set(range(1, last + 1)),
            30,
            "every event after the loss was handled",
        )
    finally:
        worker.stop()

    assert gw.bus_relay.resets >= 1
    counts = Counter(e.sequence for e in recorder.seen)
    assert set(counts) == set(range(1, last + 1))
    # republishing started from what the worker had confirmed, not from the beginning
    assert all(counts[s] == 1 for s in range(1, first + 1))


def make_memberships_more(gw) -> None:
    group = gw.groups.create("after the loss")
    ids = [c.id for c in gw.customers.list(limit=10).items]
    gw.groups.add_customers(group.id, ids)


def _confirmed(gw, prefix: str) -> int:
    with gw.engine.connect() as conn:
        values = conn.execute(
            select(bus_progress.c.last_sequence).where(bus_progress.c.bus == prefix)
        ).scalars()
        return min(values, default=0)


def test_given_a_redis_url_that_does_not_answer_when_the_worker_is_built_then_it_fails_clearly(
    open_gw,
):
    gw = open_gw(bus_url="redis://127.0.0.1:1/0")
    worker = gw.worker()
    with pytest.raises(redis.ConnectionError):
        worker.run()
    assert isinstance(worker, RedisWorker)


def test_drain_with_a_redis_bus_publishes_and_never_delivers_in_process(open_gw):
    gw = open_gw()
    handled = []
    gw.subscribe("customer_group.created", handled.append, name="in-process-never")
    gw.groups.create(name="VIP")

    assert gw.drain(10)

    assert handled == []  # delivery is the workers' job on a Redis bus
    assert gw.bus_relay.lag() == 0
