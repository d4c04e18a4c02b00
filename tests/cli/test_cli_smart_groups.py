"""``groupwire groups preview-rule`` and ``set-rule``."""

from __future__ import annotations

from groupwire import Groupwire
from tests.cli.conftest import Invoke, json_lines


def test_preview_then_set_rule_then_manual_again(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    gw.customers.create("bob@shop.test", first_name="Bob")
    gw.groups.create("Adas")
    rule = '{"first_name": "Ada"}'

    preview = cli("groups", "preview-rule", "Adas", rule, "--json", "--db", database_url)
    assert preview.exit_code == 0, preview.output
    assert json_lines(preview.stdout) == [
        {
            "joining": {"count": 1, "customer_ids": [ada.id]},
            "leaving": {"count": 0, "customer_ids": []},
        }
    ]
    assert gw.groups.members(gw.groups.list().items[0].id) == []

    applied = cli("groups", "set-rule", "Adas", rule, "--db", database_url)
    assert applied.exit_code == 0, applied.output
    assert "rule version 1: 1 customer joined, 0 customers left" in applied.stdout
    bad = cli("groups", "set-rule", "Adas", '{"first_nme": "Ada"}', "--db", database_url)
    assert bad.exit_code == 1 and "unknown field 'first_nme'" in bad.output
    manual = cli("groups", "set-rule", "Adas", "null", "--db", database_url)
    assert manual.exit_code == 0 and "manual group again" in manual.stdout
    group = gw.groups.list().items[0]
    assert (group.rule, group.rule_version) == (None, 2)
    assert [c.id for c in gw.groups.members(group.id)] == [ada.id]


def test_flips_lists_the_next_scheduled_flips(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    from datetime import timedelta

    ada = gw.customers.create("ada@shop.test", has_account=True)
    trial = gw.groups.create("Trial", rule={"created_at": {"$gte": {"$ago": "14d"}}})
    gw.service.apply_due_flips()  # the rule's application: each customer decided again
    ends = ada.created_at + timedelta(days=14)

    listed = cli("groups", "flips", "Trial", "--json", "--db", database_url)
    assert listed.exit_code == 0, listed.output
    assert json_lines(listed.stdout) == [{"customer_id": ada.id, "at": ends.isoformat()}]
    shown = cli("groups", "flips", trial.id, "--db", database_url)
    assert "1 scheduled flip" in shown.stdout and ada.id in shown.stdout
    assert gw.groups.next_flips(trial.id) == [(ada.id, ends)]


def test_set_rule_stream_applies_in_chunks_with_a_progress_bar(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    names = ["Ada", "Bob", "Ada", "Cy", "Ada"]
    ids = [
        gw.customers.create(f"c{n}@shop.test", first_name=name).id for n, name in enumerate(names)
    ]
    group = gw.groups.create("Adas")
    rule = '{"first_name": "Ada"}'

    applied = cli(
        "groups", "set-rule", "Adas", rule, "--stream", "--chunk", "2", "--db", database_url
    )
    assert applied.exit_code == 0, applied.output
    assert "rule version 1: 3 customers joined, 0 customers left" in applied.stdout
    assert "rule of Adas" in applied.stderr and "5/5" in applied.stderr  # the bar, done
    assert gw.groups.sweep_progress(group.id) is None
    assert {c.id for c in gw.groups.members(group.id)} == {ids[0], ids[2], ids[4]}
    triggers = {
        e.data["trigger"]
        for e in gw.events.list(type=["customer_group.customer_added"], subject=group.id)
    }
    assert triggers == {"rule_changed"}


def test_sweep_finishes_a_streamed_rule_left_unapplied(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    gw.customers.create("bob@shop.test", first_name="Bob")
    group = gw.groups.create("Adas")
    gw.groups.update(group.id, rule={"first_name": "Ada"}, stream=True)  # saved, not applied
    assert gw.groups.members(group.id) == []

    swept = cli("groups", "sweep", "Adas", "--db", database_url)
    assert swept.exit_code == 0, swept.output
    assert "Adas swept" in swept.stdout
    assert [c.id for c in gw.groups.members(group.id)] == [ada.id]
    again = cli("groups", "sweep", "Adas", "--db", database_url)
    assert again.exit_code == 0 and "has no sweep to run" in again.stdout
