"""Delivery to subscribers: at least once, in order, with retries, dead letters and replay."""

from __future__ import annotations

import asyncio
import threading
import time
from itertools import pairwise

from groupwire import Groupwire


def make_customers(gw, n):
    return [gw.customers.create(email=f"c{i}@shop.test").id for i in range(n)]


def seed_customers(gw, n):
    """``n`` customers written straight into the store (set-up, not under test)."""
    from datetime import UTC, datetime

    from groupwire.store import bulk, tables

    ids = [f"cus_seed{i:08d}" for i in range(n)]
    with gw.engine.connect().execution_options(groupwire_write=True) as conn, conn.begin():
        now = bulk.timestamp(conn, datetime.now(UTC))
        columns = ("id", "email", "has_account", "created_at", "updated_at")
        rows = [(cid, f"{cid}@shop.test", False, now, now) for cid in ids]
        bulk.insert_rows(conn, tables.customer, columns, rows)
    return ids


def test_subscribers_get_matching_events_in_sequence_order(gw):
    seen, everything = [], []
    gw.subscribe("customer_group.customer_*", lambda e: seen.append((e.sequence, e.type)), name="a")
    gw.subscribe("*", lambda e: everything.append(e.sequence), name="b")
    vip = gw.groups.create(name="VIP")
    ids = make_customers(gw, 3)
    gw.groups.add_customers(vip.id, ids)
    gw.groups.remove_customers(vip.id, ids[:1])

    assert gw.drain()

    assert [t for _, t in seen] == ["customer_group.customer_added"] * 3 + [
        "customer_group.customer_removed"
    ]
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert everything == list(range(1, gw.events.last_sequence() + 1))


def test_background_relay_delivers_soon_after_commit(gw):
    got = threading.Event()
    gw.subscribe("customer_group.created", lambda e: got.set(), name="live")
    gw.start()

    gw.groups.create(name="VIP")

    assert got.wait(5)


def test_a_failing_handler_is_retried_until_it_succeeds(gw):
    attempts = []

    def flaky(event):
        attempts.append(event.sequence)
        if len(attempts) < 4:
            raise ConnectionError("mail server busy")

    gw.subscribe("customer_group.created", flaky, name="flaky", max_attempts=5)
    gw.groups.create(name="VIP")

    assert gw.drain()

    assert attempts == [1, 1, 1, 1]
    assert gw.dead_letters.list() == []


def test_exhausted_retries_dead_letter_the_event_and_delivery_moves_on(gw):
    broken = {"on": True}
    handled = []

    def handler(event):
        if broken["on"] and event.data["name"] == "Bad":
            raise ValueError("cannot handle Bad")
        handled.append(event.data["name"])

    gw.subscribe("customer_group.created", handler, name="picky", max_attempts=3)
    gw.groups.create(name="Bad")
    gw.groups.create(name="Good")
    assert gw.drain()

    [letter] = gw.dead_letters.list()
    assert letter.subscriber == "picky"
    assert letter.attempts == 3
    assert "cannot handle Bad" in letter.error
    assert handled == ["Good"]

    broken["on"] = False
    assert gw.dead_letters.replay() == (1, 0)
    assert handled == ["Good", "Bad"]
    assert gw.dead_letters.list() == []
    assert len(gw.dead_letters.list(include_replayed=True)) == 1


def test_a_restarted_instance_resumes_after_its_checkpoint(database_url):
    options = dict(load_entry_points=False, relay_poll_interval=0.05)
    first_run, second_run = [], []
    with Groupwire.open(database_url, **options) as gw:
        record = first_run.append
        gw.subscribe("customer_group.created", lambda e: record(e.data["name"]), name="s")
        gw.groups.create(name="A")
        gw.groups.create(name="B")
        assert gw.drain()
        gw.groups.create(name="C")  # committed while nobody delivers

    with Groupwire.open(database_url, **options) as gw:
        gw.subscribe(
            "customer_group.created", lambda e: second_run.append(e.data["name"]), name="s"
        )
        assert gw.drain()

    assert first_run == ["A", "B"]
    assert second_run == ["C"]


def test_a_new_subscriber_can_start_from_now_or_from_the_beginning(gw):
    gw.groups.create(name="Old")
    history, fresh = [], []
    gw.subscribe("customer_group.created", lambda e: history.append(e.data["name"]), name="h")
    gw.subscribe(
        "customer_group.created", lambda e: fresh.append(e.data["name"]), name="f", from_now=True
    )
    gw.groups.create(name="New")
    assert gw.drain()
    assert history == ["Old", "New"]
    assert fresh == ["New"]


def test_async_handlers_are_awaited(gw):
    done = []

    async def handler(event):
        await asyncio.sleep(0)
        done.append(event.type)

    gw.subscribe("customer_group.created", handler, name="async")
    gw.groups.create(name="VIP")
    assert gw.drain()
    assert done == ["customer_group.created"]


def test_one_slow_subscriber_does_not_hold_up_another(gw):
    release = threading.Event()
    fast = threading.Event()
    gw.subscribe("customer_group.created", lambda e: release.wait(10), name="slow")
    gw.subscribe("customer_group.created", lambda e: fast.set(), name="fast")
    gw.start()
    try:
        gw.groups.create(name="VIP")
        assert fast.wait(5)
    finally:
        release.set()


def test_a_batch_subscriber_gets_many_events_in_one_call_in_order(gw):
    calls = []
    gw.subscribe("customer_group.customer_added", calls.append, name="batched", batch=True)
    vip = gw.groups.create(name="VIP")
    ids = make_customers(gw, 30)
    gw.groups.add_customers(vip.id, ids)

    assert gw.drain()

    assert len(calls) == 1
    assert [e.data["customer_id"] for e in calls[0]] == ids


def test_a_lingering_subscriber_gets_the_commits_of_its_linger_in_one_batch(database_url):
    # (no polling in the way: only this process's commits wake the relay)
    gw = Groupwire.open(database_url, load_entry_points=False, plugins=[], relay_poll_interval=60)
    calls: list[list[str]] = []
    gw.subscribe(
        "customer_group.customer_added",
        lambda events: calls.append([e.data["customer_id"] for e in events]),
        name="lingering",
        batch=True,
        linger=2.0,
    )
    try:
        vip = gw.groups.create(name="VIP")
        ids = make_customers(gw, 5)
        gw.start()
        assert gw.drain(10)
        time.sleep(0.3)  # its thread is past start-up, waiting for a commit to wake it

        for customer_id in ids:  # five commits, each waking the relay at once
            gw.groups.add_customers(vip.id, [customer_id])

        assert gw.drain(10)
    finally:
        gw.close()
    assert calls == [ids]


def test_the_built_in_subscribers_linger_as_configured(database_url):
    gw = Groupwire.open(
        database_url, load_entry_points=False, plugins=[], builtin_linger_seconds=0.25
    )
    try:
        lingers = {s.name: s.linger for s in gw.subscribers}
    finally:
        gw.close()
    assert lingers == {
        "groupwire.analytics": 0.25,
        "groupwire.mail.welcome": 0.25,
        "groupwire.notify": 0.25,
        "groupwire.webhooks": 0.0,  # webhooks never wait
    }


def test_a_failing_batch_is_split_so_only_the_bad_event_is_dead_lettered(gw):
    handled = []

    def handler(events):
        if any(e.data["name"] == "Bad" for e in events):
            raise ValueError("Bad in this batch")
        handled.extend(e.data["name"] for e in events)

    gw.subscribe("customer_group.created", handler, name="split", batch=True, max_attempts=2)
    for name in ("A", "Bad", "C"):
        gw.groups.create(name=name)

    assert gw.drain()

    assert handled == ["A", "C"]
    [letter] = gw.dead_letters.list()
    assert letter.subscriber == "split"
    assert letter.attempts == 2
    assert gw.dead_letters.replay() == (0, 1)  # still bad on replay, and still recorded


def test_a_bulk_change_saves_a_batch_subscribers_checkpoint_every_1000_events_not_per_batch(
    gw, monkeypatch
):
    """5,000 events reach a batch subscriber in 10 batches of 500: its checkpoint is written
    when it first moves, then every 1,000 events and when it is flushed, not after every batch
    (each save is a write transaction: per batch, they cost a bulk change more than the
    handlers' own work)."""
    from groupwire.events import checkpoints
    from groupwire.events.relay import SubscriptionCursor

    saves = []
    save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save", lambda *a: saves.append(a[2]) or save(*a))
    got = []
    subscription = gw.subscribe(
        "customer_group.customer_added", got.extend, name="bulk", batch=True, from_now=True
    )
    group = gw.groups.create(name="Wholesale")
    gw.groups.add_customers(group.id, seed_customers(gw, 5000))
    cursor = SubscriptionCursor(
        gw.engine, subscription, gw.retry_policy, batch_size=500, flush_seconds=60
    )

    batches = 0
    while cursor.deliver_batch():
        batches += 1
    cursor.flush()

    assert len(got) == 5000 and batches >= 10
    last = gw.events.last_sequence()
    assert saves[-1] == last and saves == sorted(set(saves))
    assert all(later - earlier >= 1000 for earlier, later in pairwise(saves[:-1]))
    assert len(saves) <= 7  # first move, every 1,000 of the 5,000 events, the final flush
    assert checkpoints.load(gw.engine, subscription) == last
