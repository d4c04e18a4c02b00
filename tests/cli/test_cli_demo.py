"""``groupwire demo``: the whole idea in a few seconds, and it ends by itself with code 0."""

from __future__ import annotations

import re
import subprocess
import sys

from groupwire import Groupwire
from tests.cli.conftest import REPO, Invoke

STORY_TYPES = (
    "customer.created",
    "customer_group.created",
    "customer_group.customer_added",
    "customer_group.customer_removed",
    "customer.deleted",
    "customer_group.deleted",
)


def test_demo_prints_each_delivered_event_the_veto_the_welcomes_and_the_summary(
    cli: Invoke,
) -> None:
    result = cli("demo", "--pause", "0")

    assert result.exit_code == 0, result.output
    out = result.stdout
    delivered = [int(n) for n in re.findall(r"delivered #(\d+)", out)]
    assert sorted(delivered) == list(range(1, 20))  # every event, each exactly once
    for event_type in STORY_TYPES:
        assert event_type in out
    for reason in ("reason: removed", "reason: customer_deleted", "reason: group_deleted"):
        assert reason in out
    assert "VETO by the before-hook: mallory@example.com has an unpaid invoice" in out
    assert "Nothing written, 0 events recorded" in out
    assert out.count("Welcome to VIP,") == 2
    assert "Welcome to VIP, Alice!" in out and "Welcome to VIP, Carol!" in out
    assert re.search(r"customer_group\.customer_added\s*│\s*6\s*│", out)
    assert re.search(r"total\s*│\s*19\s*│", out)
    assert re.search(r"VIP\s*│ alice@example\.com, carol@example\.com", out)
    assert "reproduces the memberships in the database: yes" in out


def test_demo_on_a_given_database_never_clashes_with_what_is_there(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    gw.groups.create("VIP")
    gw.customers.create("alice@example.com")

    first = cli("demo", "--pause", "0", "--db", database_url)
    second = cli("demo", "--pause", "0", "--db", database_url)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "Welcome to VIP, Alice!" in second.stdout
    names = [g.name for g in gw.groups.list(limit=100).items]
    assert names.count("VIP") == 1
    assert len([n for n in names if n.startswith("VIP-")]) == 2
    assert len(gw.events.list(type="customer_group.deleted", limit=None)) == 2


def test_demo_run_as_a_process_ends_by_itself_with_exit_code_0_on_a_temporary_database() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "groupwire.cli", "demo", "--pause", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        # the demo works on a temporary file unless --db says otherwise, whatever the env
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "GROUPWIRE_DATABASE_URL": "bad://"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "Summary" in completed.stdout and "VETO" in completed.stdout
