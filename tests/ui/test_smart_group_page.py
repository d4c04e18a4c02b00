"""A smart group's page: its rule written, previewed and saved through the service, its
members with why each is in, and no manual add or remove.

Runs on SQLite and PostgreSQL (the ``gw`` fixture); the browser test drives the same flow in
a real Chromium.
"""

from __future__ import annotations

import html
import re

from groupwire import Groupwire
from tests.ui.conftest import alert, hidden, notice

ACME = '{"company_name": {"$exists": true}}'


def text_of(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (to its closing tag), tags removed."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(section|table|div)>', page, re.S)
    assert found, f"no #{element_id} in the page"
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip())


def textarea(page: str, name: str) -> str:
    found = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, f"no textarea {name!r}"
    return html.unescape(found.group(1))


def events(gw: Groupwire) -> list[tuple[str, dict]]:
    return [(e.type, dict(e.data)) for e in gw.events.list(limit=None)]


def shop(gw: Groupwire) -> tuple[str, str, str]:
    ada = gw.customers.create("ada@example.com", first_name="Ada", company_name="ACME")
    bob = gw.customers.create("bob@example.com", first_name="Bob")
    cy = gw.customers.create("cy@example.com", first_name="Cy", company_name="Cy & Co")
    return ada.id, bob.id, cy.id


def test_saving_a_rule_from_the_page_makes_the_members_follow_it_and_says_why_each_is_in(
    signed_in, gw: Groupwire
) -> None:
    client, key, csrf = signed_in(["write"])
    ada, _, cy = shop(gw)
    group = gw.groups.create("Companies")
    page = client.get(f"/app/groups/{group.id}").text

    answer = client.post(
        f"/app/groups/{group.id}/rule",
        data={
            "csrf_token": csrf,
            "version": hidden(page, "version"),
            "rule": ACME,
            "action": "save",
        },
    )

    assert answer.status_code == 200, alert(answer.text)
    assert notice(answer.text) == "Rule saved (version 1); members follow it now."
    saved = gw.groups.get(group.id)
    assert (saved.rule, saved.rule_version) == ({"company_name": {"$exists": True}}, 1)
    assert {c.id for c in gw.groups.members(group.id)} == {ada, cy}
    added = [data for kind, data in events(gw) if kind == "customer_group.customer_added"]
    assert {(d["customer_id"], d["reason"], d["trigger"]) for d in added} == {
        (ada, "rule", "rule_changed"),
        (cy, "rule", "rule_changed"),
    }
    changed = [e for e in gw.events.list(limit=None) if e.subject == group.id][1:]
    assert {e.type for e in changed} >= {"customer_group.updated"}
    assert {e.actor for e in changed} == {key.id}
    members = text_of(answer.text, "members")
    assert "ada@example.com" in members and "cy@example.com" in members
    assert "bob@example.com" not in members
    assert members.count('{"company_name": {"$exists": true}}') == 2
    assert "version 1" in text_of(answer.text, "rule")
    assert textarea(answer.text, "rule").strip().startswith('{\n  "company_name"')
    # No manual add or remove on a smart group; include/exclude are the way.
    assert 'id="remove-members"' not in answer.text
    assert 'id="add-members"' not in answer.text
    assert '"include"' in text_of(answer.text, "exceptions")
    flips = text_of(answer.text, "scheduled-flips")
    assert flips.startswith("Next scheduled flips None")  # the rule reads no time


def test_a_bad_rule_shows_the_services_error_keeps_the_text_and_saves_nothing(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    shop(gw)
    group = gw.groups.create("Companies", rule={"company_name": {"$exists": True}})
    before = events(gw)

    for typed, message in [
        ('{"emale": "a@b.co"}', "invalid data — rule.emale: unknown field 'emale'"),
        ('{"orders.total": {"$gte": 1000}}', "invalid data — rule.orders.total needs a currency"),
        ('{"company_name": ', "invalid data — Rule is not valid JSON: Expecting value (line 1)"),
        ("[1]", "invalid data — rule must be a JSON object"),
    ]:
        answer = client.post(
            f"/app/groups/{group.id}/rule",
            data={"csrf_token": csrf, "rule": typed, "action": "save"},
        )

        assert answer.status_code == 400, typed
        assert alert(answer.text).startswith(message), alert(answer.text)
        assert textarea(answer.text, "rule") == typed
    saved = gw.groups.get(group.id)
    assert (saved.rule, saved.rule_version) == ({"company_name": {"$exists": True}}, 1)
    assert events(gw) == before


def test_the_preview_shows_who_would_join_and_leave_and_changes_nothing(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["read"])  # a preview is a read
    ada, bob, cy = shop(gw)
    group = gw.groups.create("Companies", rule={"company_name": {"$exists": True}})
    before = events(gw)
    typed = '{"first_name": {"$in": ["Ada", "Bob"]}}'

    answer = client.post(
        f"/app/groups/{group.id}/rule",
        data={"csrf_token": csrf, "rule": typed, "action": "preview"},
    )

    assert answer.status_code == 200, alert(answer.text)
    joining = text_of(answer.text, "preview-joining")
    leaving = text_of(answer.text, "preview-leaving")
    assert joining.startswith("Would join: 1")
    assert f"bob@example.com — Bob {bob}" in joining
    assert leaving.startswith("Would leave: 1")
    assert f"cy@example.com — Cy {cy}" in leaving
    assert "ada" not in joining + leaving
    assert textarea(answer.text, "rule") == typed  # the typed rule stays to be saved
    assert events(gw) == before
    saved = gw.groups.get(group.id)
    assert (saved.rule, saved.rule_version) == ({"company_name": {"$exists": True}}, 1)
    assert {c.id for c in gw.groups.members(group.id)} == {ada, cy}

    bad = client.post(
        f"/app/groups/{group.id}/rule",
        data={"csrf_token": csrf, "rule": '{"emale": 1}', "action": "preview"},
    )
    assert bad.status_code == 400
    assert "rule.emale: unknown field" in alert(bad.text)
    assert 'id="rule-preview"' not in bad.text


def test_the_member_list_names_the_or_branch_that_held_and_the_include_list(
    signed_in, gw: Groupwire
) -> None:
    client, _, _ = signed_in(["read"])
    _, bob, _ = shop(gw)
    rule = {
        "$or": [{"first_name": "Zed"}, {"email": {"$ilike": "%@example.com"}}],
        "company_name": {"$exists": True},
        "include": [bob],
    }
    group = gw.groups.create("Mixed", rule=rule)

    page = client.get(f"/app/groups/{group.id}").text

    rows = {
        row.split(" ")[0]: row
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)
        for row in [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip())]
        if "@" in row
    }
    assert set(rows) == {"ada@example.com", "bob@example.com", "cy@example.com"}
    assert (
        'one of $or (branch 2): {"email": {"$ilike": "%@example.com"}} '
        '{"company_name": {"$exists": true}}'
    ) in rows["ada@example.com"]
    assert "include list" in rows["bob@example.com"]
    assert "$or" not in rows["bob@example.com"]  # Bob has no company: the condition fails
    assert "include list" not in rows["cy@example.com"]


def test_an_empty_or_null_rule_makes_the_group_manual_again_and_its_members_stay(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    ada, _, cy = shop(gw)
    group = gw.groups.create("Companies", rule={"company_name": {"$exists": True}})
    refused = client.post(
        f"/app/groups/{group.id}/members", data={"csrf_token": csrf, "emails": "bob@example.com"}
    )
    assert refused.status_code == 400
    assert alert(refused.text).startswith("not allowed — Customer group Companies")

    answer = client.post(
        f"/app/groups/{group.id}/rule",
        data={"csrf_token": csrf, "rule": " null ", "action": "save"},
    )

    assert notice(answer.text) == "Rule removed: the group is manual again; its members stay."
    saved = gw.groups.get(group.id)
    assert (saved.rule, saved.rule_version) == (None, 2)
    assert {c.id for c in gw.groups.members(group.id)} == {ada, cy}
    assert 'id="remove-members"' in answer.text and 'id="add-members"' in answer.text
    again = client.post(
        f"/app/groups/{group.id}/rule", data={"csrf_token": csrf, "rule": "", "action": "save"}
    )
    assert again.status_code == 400
    assert "it has none to remove" in alert(again.text)
    assert gw.groups.get(group.id).rule_version == 2


def test_a_rule_saved_over_someone_elses_change_or_with_a_read_only_key_saves_nothing(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    reader, _, reader_csrf = signed_in(["read"])
    shop(gw)
    group = gw.groups.create("Companies")
    page = client.get(f"/app/groups/{group.id}").text
    gw.groups.update(group.id, name="Renamed elsewhere")
    before = events(gw)

    stale = client.post(
        f"/app/groups/{group.id}/rule",
        data={
            "csrf_token": csrf,
            "version": hidden(page, "version"),
            "rule": ACME,
            "action": "save",
        },
    )
    refused = reader.post(
        f"/app/groups/{group.id}/rule",
        data={"csrf_token": reader_csrf, "rule": ACME, "action": "save"},
    )

    assert stale.status_code == 412
    assert "Someone changed this group after you opened it" in alert(stale.text)
    assert textarea(stale.text, "rule") == ACME
    assert refused.status_code == 403
    assert "lacks the 'write' scope" in alert(refused.text)
    assert gw.groups.get(group.id).rule is None
    assert events(gw) == before


def test_a_time_rule_lists_its_next_scheduled_flips(signed_in, gw: Groupwire) -> None:
    client, _, _ = signed_in(["read"])
    ada, bob, _ = shop(gw)
    group = gw.groups.create("Trial", rule={"metadata.trial_ends_at": {"$gt": "$now"}})
    # the update decides Ada in its transaction and keeps her next flip: her trial's end
    gw.customers.update(ada, metadata={"trial_ends_at": "2999-01-02T03:04:05Z"})

    flips = text_of(client.get(f"/app/groups/{group.id}").text, "scheduled-flips")

    assert [customer for customer, _ in gw.groups.next_flips(group.id)] == [ada]
    assert ada in flips and "2999-01-02 03:04:05 UTC" in flips
    assert bob not in flips
