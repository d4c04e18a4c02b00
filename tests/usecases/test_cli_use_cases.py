"""``groupwire mail ...`` and ``groupwire stats ...`` on a real database."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from groupwire import Groupwire
from groupwire.cli import app as cli_app

ENV = {"COLUMNS": "200", "GROUPWIRE_PLUGINS": "", "GROUPWIRE_MAIL_SENDER": "hello@shop.example"}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env=ENV)


def test_the_cli_sets_shows_previews_and_deletes_a_welcome_email(
    gw: Groupwire, database_url: str
) -> None:
    group = gw.groups.create("VIP")
    jane = gw.customers.create("jane@example.com", first_name="Jane")

    set_ = run(
        "--db",
        database_url,
        "mail",
        "welcome",
        "set",
        "VIP",
        "--subject",
        "Welcome {{ customer.first_name }}",
        "--body",
        "Hello from {{ group.name }}",
    )
    assert set_.exit_code == 0, set_.output
    assert gw.mail.get(group.id).subject == "Welcome {{ customer.first_name }}"

    shown = run(
        "--db", database_url, "mail", "welcome", "show", "VIP", "--customer", jane.id, "--json"
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == {"subject": "Welcome Jane", "body": "Hello from VIP"}

    typo = run(
        "--db",
        database_url,
        "mail",
        "welcome",
        "set",
        "VIP",
        "--subject",
        "{{ customer.nmae }}",
        "--body",
        "x",
    )
    assert typo.exit_code == 1 and "'nmae'" in typo.output

    deleted = run("--db", database_url, "mail", "welcome", "delete", "VIP")
    assert deleted.exit_code == 0, deleted.output
    assert gw.mail.list() == []


def test_the_cli_adds_lists_and_deletes_notification_rules(
    gw: Groupwire, database_url: str
) -> None:
    group = gw.groups.create("High-Value")
    added = run(
        "--db",
        database_url,
        "mail",
        "rules",
        "add",
        "High-Value",
        "--email",
        "rep@shop.example",
        "--json",
    )
    assert added.exit_code == 0, added.output
    rule = json.loads(added.stdout)
    assert rule["group_id"] == group.id and rule["emails"] == ["rep@shop.example"]

    listed = run("--db", database_url, "mail", "rules", "list", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [rule["id"]]
    assert run("--db", database_url, "mail", "rules", "delete", rule["id"]).exit_code == 0
    assert gw.notifications.list().count == 0


def test_the_cli_shows_a_groups_stats(gw: Groupwire, database_url: str) -> None:
    group = gw.groups.create("VIP")
    customers = [gw.customers.create(f"c{i}@example.com") for i in range(3)]
    gw.groups.add_customers(group.id, [c.id for c in customers])
    gw.groups.remove_customers(group.id, [customers[0].id])

    shown = run("--db", database_url, "stats", "show", "VIP", "--granularity", "hour", "--json")
    assert shown.exit_code == 0, shown.output
    stats = json.loads(shown.stdout)
    assert stats["member_count"] == 2
    assert stats["series"][-1] | {"bucket": None} == {
        "bucket": None,
        "joins": 3,
        "leaves": 1,
        "members": 2,
    }
    rebuilt = run("--db", database_url, "stats", "rebuild")
    assert rebuilt.exit_code == 0 and "4 membership events" in rebuilt.output
    assert run("--db", database_url, "stats", "show", "cusgroup_nope").exit_code == 1
