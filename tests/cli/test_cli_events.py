"""``groupwire events tail``: the log, filtered, and followed live with a sequence cursor."""

from __future__ import annotations

import threading
from pathlib import Path

from groupwire import Groupwire
from tests.cli.conftest import Invoke, cli_process, json_lines, stop


def seed(gw: Groupwire) -> tuple[str, str]:
    """Events 1-3: a customer, a group, the customer joining the group."""
    customer = gw.customers.create("ann@example.com")
    group = gw.groups.create("VIP")
    gw.groups.add_customers(group.id, [customer.id])
    return customer.id, group.id


def sequences(output: str) -> list[int]:
    return [event["sequence"] for event in json_lines(output)]


def test_events_tail_prints_the_recent_events_in_commit_order_and_stops(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    customer_id, group_id = seed(gw)

    result = cli("events", "tail", "--json", "--db", database_url)

    assert result.exit_code == 0, result.output
    envelopes = json_lines(result.stdout)
    assert [(e["sequence"], e["type"]) for e in envelopes] == [
        (1, "customer.created"),
        (2, "customer_group.created"),
        (3, "customer_group.customer_added"),
    ]
    assert envelopes[2]["data"]["customer_id"] == customer_id
    readable = cli("events", "tail", "--db", database_url)
    lines = readable.stdout.splitlines()
    assert len(lines) == 3 and "customer_group.customer_added" in lines[2]
    assert group_id in lines[2] and customer_id in lines[2]


def test_events_tail_filters_by_type_pattern_subject_cursor_and_count(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    customer_id, group_id = seed(gw)

    def tail(*args: object) -> list[int]:
        result = cli("events", "tail", "--json", *args, "--db", database_url)
        assert result.exit_code == 0, result.output
        return sequences(result.stdout)

    assert tail("--type", "customer_group.*") == [2, 3]
    assert tail("-t", "customer.created") == [1]
    assert tail("-t", "customer.created", "-t", "customer_group.customer_added") == [1, 3]
    assert tail("--subject", customer_id) == [1]
    assert tail("--subject", group_id) == [2, 3]
    assert tail("--after", "1") == [2, 3]
    assert tail("--last", "2") == [2, 3]
    assert tail("--after", "0", "--limit", "2") == [1, 2]


def test_events_tail_follow_prints_events_committed_after_it_started(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    _, group_id = seed(gw)
    start = gw.events.last_sequence()

    def write_later() -> None:
        gw.groups.update(group_id, description="changed")
        gw.customers.create("bo@example.com")

    writer = threading.Thread(target=write_later)
    writer.start()
    result = cli(
        "events",
        "tail",
        "--json",
        "--follow",
        "--after",
        start,
        "--limit",
        "2",
        "--for",
        "20",
        "--interval",
        "0.05",
        "--db",
        database_url,
    )
    writer.join()

    assert result.exit_code == 0, result.output
    assert [e["type"] for e in json_lines(result.stdout)] == [
        "customer_group.updated",
        "customer.created",
    ]


def test_events_tail_follow_ends_after_the_given_seconds_when_nothing_happens(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    seed(gw)
    result = cli(
        "events",
        "tail",
        "--json",
        "--follow",
        "--last",
        "1",
        "--for",
        "0.3",
        "--interval",
        "0.05",
        "--db",
        database_url,
    )
    assert result.exit_code == 0, result.output
    assert sequences(result.stdout) == [3]


def test_events_tail_follows_what_another_process_writes(
    gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    seed(gw)
    log = tmp_path / "tail.out"
    process = cli_process(
        "events",
        "tail",
        "--json",
        "--follow",
        "--after",
        "3",
        "--limit",
        "2",
        "--for",
        "45",
        "--interval",
        "0.05",
        "--db",
        database_url,
        log=log,
    )
    try:
        customer = gw.customers.create("cy@example.com")
        gw.customers.delete(customer.id)
        assert process.wait(50) == 0, log.with_suffix(".err").read_text()
    finally:
        stop(process)
    assert [(e["sequence"], e["type"]) for e in json_lines(log.read_text())] == [
        (4, "customer.created"),
        (5, "customer.deleted"),
    ]
