"""``groupwire medusa smart-group set`` and ``list``: the rules of Medusa's groups."""

from __future__ import annotations

import json

from groupwire import Groupwire
from tests.cli.conftest import Invoke

VIP = '{"orders.total": {"currency": "eur", "$gte": 1000}}'


def rules(cli: Invoke, database_url: str) -> list[dict[str, object]]:
    listed = cli("medusa", "smart-group", "list", "--json", "--db", database_url)
    assert listed.exit_code == 0, listed.output
    return list(json.loads(listed.stdout))


def test_set_validates_versions_and_drops_a_rule(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    vip = gw.groups.create("VIP")  # as capture writes Medusa's group into the copy
    other = gw.groups.create("Other")

    saved = cli("medusa", "smart-group", "set", vip.id, VIP, "--db", database_url)
    assert saved.exit_code == 0, saved.output
    assert "rule version 1" in saved.stdout
    bad = cli("medusa", "smart-group", "set", vip.id, '{"orders.totl": 1}', "--db", database_url)
    assert bad.exit_code == 1
    assert '400 {"type": "invalid_data"' in bad.output and "orders.totl" in bad.output
    assert rules(cli, database_url) == [
        {"group_id": vip.id, "rule": json.loads(VIP), "rule_version": 1}
    ]

    reads_vip = json.dumps({"groups.id": vip.id})
    reads_other = json.dumps({"groups.id": other.id})
    assert (
        cli("medusa", "smart-group", "set", other.id, reads_vip, "--db", database_url).exit_code
        == 0
    )
    cycle = cli("medusa", "smart-group", "set", vip.id, reads_other, "--db", database_url)
    assert cycle.exit_code == 1 and "would read each other" in cycle.output
    unknown = cli("medusa", "smart-group", "set", "cusgroup_nope", VIP, "--db", database_url)
    assert unknown.exit_code == 1 and "404" in unknown.output

    again = cli(
        "medusa",
        "smart-group",
        "set",
        vip.id,
        '{"email": {"$like": "%@vip.example"}}',
        "--db",
        database_url,
    )
    assert again.exit_code == 0 and "rule version 2" in again.stdout
    dropped = cli("medusa", "smart-group", "set", other.id, "null", "--db", database_url)
    assert dropped.exit_code == 0 and "manual again" in dropped.stdout
    assert [r["group_id"] for r in rules(cli, database_url)] == [vip.id]
    assert gw.groups.get(vip.id).rule is None  # the copy's group row stays Medusa's
