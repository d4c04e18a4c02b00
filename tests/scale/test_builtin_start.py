"""The built-in subscribers (webhooks, welcome emails, notifications) on the Redis Streams bus
owe each endpoint, email and rule every matching event committed after its creation, however
late the first worker registers them.

Real PostgreSQL, Redis, HTTP receiver and SMTP server; the first test runs ``groupwire worker``
as a process of its own, the others run workers in threads.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from groupwire.events.bus_tables import bus_progress
from groupwire.webhooks.plugin import SUBSCRIBER as WEBHOOKS
from groupwire.webhooks.tables import webhook_message
from tests.usecases.mailbox import SmtpServer
from tests.webhooks.receivers import Receiver

from .conftest import REDIS_URL, child_env, spawn, wait_until

SENDER = "Shop <hello@shop.example>"


def saved_progress(gw, subscriber: str) -> int:
    """The lowest saved progress of ``subscriber`` over the streams (-1: not registered)."""
    with gw.engine.connect() as conn:
        value = conn.execute(
            select(func.min(bus_progress.c.last_sequence)).where(
                bus_progress.c.bus == gw.bus_relay.bus.name,
                bus_progress.c.subscriber == subscriber,
            )
        ).scalar()
    return -1 if value is None else int(value)


def message_count(gw) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_message)).scalar_one())


def group_ids(receiver: Receiver) -> list[str]:
    return [r.json["data"]["id"] for r in list(receiver.received)]


def worker_process(tmp_path: Path, pg_url: str, prefix: str, n: int):
    env = child_env(
        GROUPWIRE_DATABASE_URL=pg_url,
        GROUPWIRE_BUS_URL=REDIS_URL,
        GROUPWIRE_BUS_PREFIX=prefix,
        GROUPWIRE_LOAD_ENTRY_POINTS="false",
        GROUPWIRE_AUTO_MIGRATE="false",
        GROUPWIRE_PLUGINS="",
        GROUPWIRE_RELAY_POLL_INTERVAL="0.1",
        GROUPWIRE_WEBHOOKS_ALLOW_PRIVATE="true",
        GROUPWIRE_WEBHOOKS_POLL_INTERVAL="0.05",
        GROUPWIRE_BUS_LEASE_SECONDS="1.5",
        GROUPWIRE_BUS_CLAIM_IDLE_SECONDS="1.0",
    )
    return spawn(["-m", "groupwire.cli", "worker"], env, tmp_path / f"worker-{n}.log")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_given_an_endpoint_and_10_groups_committed_before_the_first_worker_when_groupwire_worker_starts_then_all_10_are_delivered_and_its_restart_delivers_only_the_11th(  # noqa: E501
    open_gw, pg_url, prefix, tmp_path
):
    # an API server (this process: commits and publishes; it dispatches no webhook itself)
    api = open_gw(webhooks_allow_private=True, webhooks_dispatch=False)
    workers = []
    with Receiver() as receiver:
        try:
            # given an endpoint created on a fresh database, then 10 groups, all published
            endpoint = api.webhooks.create(receiver.url, event_types=["customer_group.created"])
            before = [api.groups.create(f"Before {n}").id for n in range(10)]
            api.deliver_pending()
            assert saved_progress(api, WEBHOOKS) == -1  # no worker has registered it yet

            # when the first worker starts
            workers.append(worker_process(tmp_path, pg_url, prefix, 1))

            # then the endpoint receives all 10
            assert wait_until_true(lambda: len(receiver.received) >= 10, 90), (
                f"{len(receiver.received)} of 10 delivered; worker log: {read_log(tmp_path, 1)}"
            )
            assert sorted(group_ids(receiver)) == sorted(before)
            total = api.events.last_sequence()
            wait_until(lambda: saved_progress(api, WEBHOOKS) >= total, 30, "progress saved")

            # and once restarted (SIGTERM, then a new worker), it delivers the 11th only
            workers[0].send_signal(signal.SIGTERM)
            assert workers[0].wait(30) == 0, read_log(tmp_path, 1)
            after = api.groups.create("After").id
            api.deliver_pending()
            workers.append(worker_process(tmp_path, pg_url, prefix, 2))
            total = api.events.last_sequence()
            assert wait_until_true(lambda: len(receiver.received) >= 11, 90), read_log(tmp_path, 2)
            wait_until(lambda: saved_progress(api, WEBHOOKS) >= total, 30, "progress saved")
        finally:
            for process in workers:
                if process.poll() is None:
                    process.kill()
                process.wait(10)

    assert sorted(group_ids(receiver)) == sorted([*before, after])  # each once
    assert api.webhooks.messages(endpoint.id, limit=100).count == 11


@pytest.mark.timeout(120)
def test_given_a_welcome_email_and_a_rule_and_joins_committed_before_the_first_worker_when_it_starts_then_every_join_is_mailed_and_notified(  # noqa: E501
    open_gw,
):
    with SmtpServer() as smtp:
        api = open_gw(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_timeout=10.0,
            mail_sender=SENDER,
            webhooks_dispatch=False,
        )
        # given a history before the feature was configured (nobody is owed it)
        old = api.groups.create("Old")
        api.groups.add_customers(old.id, [api.customers.create("old@example.com").id])
        # and a group with a welcome email and a notification rule, then 5 joins
        vip = api.groups.create("VIP")
        api.mail.set(vip.id, subject="Welcome {{ customer.email }}", body="Hello")
        api.notifications.create(vip.id, emails=["sales@shop.example"])
        api.mail.set(old.id, subject="Welcome back", body="Hello again")
        joined = [api.customers.create(f"c{n}@example.com").id for n in range(5)]
        api.groups.add_customers(vip.id, joined)
        api.deliver_pending()

        # when the first worker starts
        worker = api.worker().start()
        try:
            # then each join is welcomed and notified, and nothing of the history before
            assert smtp.mailbox.wait_for(10, 60), f"{len(smtp.mailbox.received)} of 10 mails"
            total = api.events.last_sequence()
            wait_until(
                lambda: (
                    min(
                        saved_progress(api, "groupwire.mail.welcome"),
                        saved_progress(api, "groupwire.notify"),
                    )
                    >= total
                ),
                30,
                "both subscribers' progress saved",
            )
        finally:
            worker.stop()
        received = list(smtp.mailbox.received)

    welcomed = sorted(r.rcpt_tos[0] for r in received if r.subject.startswith("Welcome"))
    notified = [r for r in received if r.rcpt_tos == ["sales@shop.example"]]
    assert welcomed == sorted(f"c{n}@example.com" for n in range(5))
    assert len(notified) == 5
    assert len(received) == 10


@pytest.mark.timeout(120)
def test_given_another_subscribers_worker_confirmed_the_streams_when_the_relay_trims_before_the_webhooks_worker_starts_then_the_endpoint_still_gets_every_event(  # noqa: E501
    open_gw,
):
    api = open_gw(webhooks_allow_private=True, webhooks_dispatch=False)  # nothing is sent
    seen = []
    api.subscribe("customer_group.created", seen.append, name="plain")
    # given an endpoint, then 10 groups, published
    api.webhooks.create("http://127.0.0.1:9/hook", event_types=["customer_group.created"])
    for n in range(10):
        api.groups.create(f"Group {n}")
    api.deliver_pending()
    total = api.events.last_sequence()
    # and a worker that runs only another subscriber, which handled and confirmed them all
    plain = api.worker(subscribers=["plain"]).start()
    try:
        wait_until(lambda: saved_progress(api, "plain") >= total, 30, "plain confirmed all")
    finally:
        plain.stop()
    assert len(seen) == 10

    # when the relay trims the streams before any worker registers the webhooks subscriber
    api.bus_relay.trim()
    webhooks = api.worker(subscribers=[WEBHOOKS]).start()
    try:
        # then its worker still finds the events the endpoint is owed
        wait_until(lambda: saved_progress(api, WEBHOOKS) >= total, 30, "webhooks caught up")
    finally:
        webhooks.stop()
    assert message_count(api) == 10
    # and once it is registered, the streams are trimmed below what both confirmed
    api.bus_relay.trim()
    client = api.bus_relay.bus.client
    assert sum(client.xlen(key) for key in api.bus_relay.bus.stream_keys) == 0


def wait_until_true(condition, timeout: float) -> bool:
    try:
        wait_until(condition, timeout, "")
    except AssertionError:
        return False
    return True


def read_log(tmp_path: Path, n: int) -> str:
    path = tmp_path / f"worker-{n}.log"
    return path.read_text()[-3000:] if path.exists() else "(no log)"
