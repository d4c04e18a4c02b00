"""Audit export: a group's or a customer's event log as CSV or JSON lines, with actor and time."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from typer.testing import CliRunner

from groupwire import Groupwire
from groupwire.cli import app as cli_app
from groupwire.domain.changes import Context

COLUMNS = ["sequence", "time", "type", "subject", "actor", "correlation_id", "data"]


def read_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == COLUMNS
    return list(reader)


def history(gw: Groupwire) -> dict[str, Any]:
    """A group with members coming and going, each change by a known actor and request."""
    group = gw.groups.create("VIP", context=Context(actor="key_admin", correlation_id="req_1"))
    jane = gw.customers.create("jane@example.com", context=Context(actor="key_shop"))
    john = gw.customers.create("john@example.com", context=Context(actor="key_shop"))
    other = gw.groups.create("Other")
    gw.groups.add_customers(
        group.id, [jane.id, john.id], context=Context(actor="key_crm", correlation_id="req_2")
    )
    gw.groups.add_customers(other.id, [jane.id])
    gw.groups.update(group.id, description="Top customers", context=Context(actor="key_admin"))
    gw.groups.remove_customers(group.id, [john.id], context=Context(actor="key_crm"))
    gw.customers.update(jane.id, first_name="Jane")
    return {"group": group, "jane": jane, "john": john, "other": other}


def test_a_groups_trail_exports_as_csv_with_actor_time_and_data(client: Any, gw: Groupwire) -> None:
    made = history(gw)
    group = made["group"]

    response = client.get(f"/admin/customer-groups/{group.id}/events/export?format=csv")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = read_csv(response.text)
    expected = gw.events.list(subject=group.id, limit=None)
    assert [int(r["sequence"]) for r in rows] == [e.sequence for e in expected]
    assert [r["type"] for r in rows] == [
        "customer_group.created",
        "customer_group.customer_added",
        "customer_group.customer_added",
        "customer_group.updated",
        "customer_group.customer_removed",
    ]
    assert [r["actor"] for r in rows] == ["key_admin", "key_crm", "key_crm", "key_admin", "key_crm"]
    assert rows[0]["correlation_id"] == "req_1" and rows[1]["correlation_id"] == "req_2"
    assert all(r["subject"] == group.id for r in rows)
    assert rows[0]["time"] == expected[0].envelope()["time"]
    removed = json.loads(rows[-1]["data"])
    assert removed["customer_id"] == made["john"].id and removed["reason"] == "removed"


def test_a_customers_trail_includes_the_membership_events_naming_them(
    client: Any, gw: Groupwire
) -> None:
    made = history(gw)
    jane = made["jane"]

    response = client.get(f"/admin/customers/{jane.id}/events/export", params={"format": "jsonl"})

    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [set(line) for line in lines] == [set(COLUMNS)] * len(lines)
    assert [(line["type"], line["subject"]) for line in lines] == [
        ("customer.created", jane.id),
        ("customer_group.customer_added", made["group"].id),
        ("customer_group.customer_added", made["other"].id),
        ("customer.updated", jane.id),
    ]
    assert all(line["data"].get("customer_id", jane.id) == jane.id for line in lines)
    sequences = [line["sequence"] for line in lines]
    assert sequences == sorted(sequences)


def test_an_export_can_be_limited_in_time_and_refuses_bad_requests(
    client: Any, gw: Groupwire
) -> None:
    made = history(gw)
    group = made["group"]
    url = f"/admin/customer-groups/{group.id}/events/export"
    future = client.get(url, params={"since": "2999-01-01T00:00:00Z"})
    assert future.status_code == 200 and read_csv(future.text) == []

    assert client.get(url, params={"format": "xml"}).status_code == 400
    unknown = client.get("/admin/customer-groups/cusgroup_nope/events/export")
    assert unknown.status_code == 404 and unknown.json()["type"] == "not_found"
    assert client.get("/admin/customers/cus_nope/events/export").status_code == 404


def test_a_deleted_groups_trail_can_still_be_exported(client: Any, gw: Groupwire) -> None:
    made = history(gw)
    gw.groups.delete(made["group"].id)
    response = client.get(f"/admin/customer-groups/{made['group'].id}/events/export")
    assert response.status_code == 200
    assert read_csv(response.text)[-1]["type"] == "customer_group.deleted"


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(client: Any, gw: Groupwire) -> None:
    group = gw.groups.create("=HYPERLINK(1)", context=Context(actor="=cmd|' /C calc'!A0"))
    rows = read_csv(client.get(f"/admin/customer-groups/{group.id}/events/export").text)
    assert rows[0]["actor"] == "'=cmd|' /C calc'!A0"
    assert json.loads(rows[0]["data"])["name"] == "=HYPERLINK(1)"  # JSON cells start with {


def test_the_cli_exports_a_group_as_csv(gw: Groupwire, database_url: str, tmp_path: Any) -> None:
    made = history(gw)
    runner = CliRunner()
    env = {"COLUMNS": "200", "GROUPWIRE_PLUGINS": ""}

    printed = runner.invoke(
        cli_app,
        ["audit", "export", "--group", made["group"].id, "--format", "csv", "--db", database_url],
        env=env,
    )
    assert printed.exit_code == 0, printed.output
    rows = read_csv(printed.stdout)
    assert len(rows) == 5 and rows[1]["actor"] == "key_crm"

    target = tmp_path / "jane.jsonl"
    written = runner.invoke(
        cli_app,
        [
            *("--db", database_url, "audit", "export", "--customer", made["jane"].id),
            *("-f", "jsonl", "-o", str(target)),
        ],
        env=env,
    )
    assert written.exit_code == 0, written.output
    assert len(target.read_text().splitlines()) == 4

    missing = runner.invoke(
        cli_app, ["audit", "export", "--group", "cusgroup_nope", "--db", database_url], env=env
    )
    assert missing.exit_code == 1 and "cusgroup_nope not found" in missing.output
    both = runner.invoke(cli_app, ["audit", "export", "--db", database_url], env=env)
    assert both.exit_code == 2
