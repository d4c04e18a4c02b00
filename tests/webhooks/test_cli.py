"""``groupwire webhooks ...``: the same operations from the command line."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from groupwire.cli import app
from tests.webhooks.conftest import open_gw
from tests.webhooks.receivers import Receiver

ENV = {
    "COLUMNS": "200",
    "GROUPWIRE_PLUGINS": "",
    "GROUPWIRE_LOAD_ENTRY_POINTS": "false",
    "GROUPWIRE_WEBHOOKS_ALLOW_PRIVATE": "true",
}


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=ENV)


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_webhooks_from_create_to_replay(database_url: str) -> None:
    db = ["--db", database_url]
    with Receiver(status=500) as receiver:
        created = run("webhooks", "create", receiver.url, "-e", "customer_group.*", "--json", *db)
        assert created.exit_code == 0, created.output
        [endpoint] = lines(created)
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["event_types"] == ["customer_group.*"]

        listed = run("webhooks", "list", "--json", *db)
        assert [e["id"] for e in lines(listed)] == [endpoint["id"]]
        assert "secret" not in lines(listed)[0]

        gw = open_gw(database_url)
        try:
            gw.groups.create("From the CLI")
            gw.deliver_pending()
            gw.webhooks.deliver_due()
        finally:
            gw.close()

        messages = lines(run("webhooks", "messages", endpoint["id"], "--json", *db))
        assert [m["status"] for m in messages] == ["pending"]
        attempts = lines(run("webhooks", "attempts", endpoint["id"], "--json", *db))
        assert [a["status_code"] for a in attempts] == [500]

        resent = run("webhooks", "resend", endpoint["id"], messages[0]["id"], *db)
        assert resent.exit_code == 0 and "Queued" in resent.stdout
        replayed = run("webhooks", "replay", endpoint["id"], "--since", "2000-01-01", *db)
        assert replayed.exit_code == 0 and "Queued 1 events" in replayed.stdout

        updated = run("webhooks", "update", endpoint["id"], "--disable", "--ordered", "--json", *db)
        assert lines(updated)[0]["enabled"] is False and lines(updated)[0]["ordered"] is True
        rotated = lines(run("webhooks", "rotate-secret", endpoint["id"], "--json", *db))
        assert rotated[0]["secret"] != endpoint["secret"]

        deleted = run("webhooks", "delete", endpoint["id"], *db)
        assert deleted.exit_code == 0
        assert lines(run("webhooks", "list", "--json", *db)) == []


def test_bad_input_is_one_clear_error(database_url: str) -> None:
    db = ["--db", database_url]
    refused = run("webhooks", "create", "http://169.254.169.254/", *db)
    assert refused.exit_code == 1 and "metadata" in refused.output
    missing = run("webhooks", "messages", "wh_nope", *db)
    assert missing.exit_code == 1 and "not found" in missing.output
    bad_time = run("webhooks", "replay", "wh_nope", "--since", "last week", *db)
    assert bad_time.exit_code == 2
