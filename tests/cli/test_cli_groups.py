"""``groupwire groups`` and ``groupwire customers``, on SQLite and PostgreSQL.

Member files are resolved completely before anything is written: one unknown line and
nothing is written. Writing goes in chunks, one all-or-nothing service call each; the first
chunk that fails stops the command, the chunks before it stay written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from groupwire import Groupwire
from tests.cli.conftest import PLUGIN, Invoke, json_lines
from tests.cli.recording_plugin import Recorder


def customers(gw: Groupwire, count: int, **fields: object) -> list[str]:
    return [gw.customers.create(f"c{i}@example.com", **fields).id for i in range(count)]


def member_ids(gw: Groupwire, group_id: str) -> set[str]:
    return {c.id for c in gw.groups.members(group_id)}


def event_types(gw: Groupwire) -> list[str]:
    return [e.type for e in gw.events.list(limit=None)]


def test_groups_create_prints_the_id_and_list_shows_name_and_member_count(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    created = cli(
        "groups",
        "create",
        "VIP",
        "--description",
        "best",
        "--metadata",
        '{"tier": "gold"}',
        "--json",
        "--db",
        database_url,
    )
    assert created.exit_code == 0, created.output
    [group] = json_lines(created.stdout)
    assert group["name"] == "VIP" and group["metadata"] == {"tier": "gold"}
    assert group["created_by"].startswith("cli:")
    gw.groups.add_customers(group["id"], customers(gw, 2))

    listed = cli("groups", "list", "--json", "--db", database_url)
    assert listed.exit_code == 0, listed.output
    assert [(g["id"], g["name"], g["member_count"]) for g in json_lines(listed.stdout)] == [
        (group["id"], "VIP", 2)
    ]
    table = cli("groups", "list", "--db", database_url)
    assert table.exit_code == 0 and group["id"] in table.stdout and "VIP" in table.stdout
    event = gw.events.list(type="customer_group.created")[0]
    assert event.actor is not None and event.actor.startswith("cli:")


def test_the_global_db_option_reaches_the_command_and_wins_over_the_environment(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    elsewhere = {"GROUPWIRE_DATABASE_URL": "sqlite:////nonexistent/elsewhere.db"}
    result = cli("--db", database_url, "groups", "create", "Global", env=elsewhere)
    assert result.exit_code == 0, result.output
    assert [g.name for g in gw.groups.list().items] == ["Global"]
    from_env = cli("groups", "list", "--json", env={"GROUPWIRE_DATABASE_URL": database_url})
    assert [g["name"] for g in json_lines(from_env.stdout)] == ["Global"]


def test_groups_create_with_a_taken_name_exits_1_with_the_reason(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    gw.groups.create("VIP")
    result = cli("groups", "create", "VIP", "--db", database_url)
    assert result.exit_code == 1
    assert "Customer group with name: VIP, already exists. (invalid_data)" in result.stderr
    assert gw.groups.list().count == 1


def test_groups_create_with_metadata_that_is_not_a_json_object_is_a_usage_error(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    for bad in ("[1", "[1, 2]"):
        result = cli("groups", "create", "X", "--metadata", bad, "--db", database_url)
        assert result.exit_code == 2, result.output
        assert "--metadata" in result.output
    assert gw.groups.list().count == 0


def test_groups_add_from_a_csv_of_emails_and_ids_adds_each_customer_once(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    ids = customers(gw, 4)
    group = gw.groups.create("VIP")
    csv = tmp_path / "members.csv"
    # one per line: emails in any case, ids, blank lines, and one customer named twice
    csv.write_text(f"C0@Example.com\n\n{ids[1]}\nc2@example.com\n{ids[0]}\n")

    result = cli("groups", "add", "VIP", "--csv", csv, "--db", database_url)

    assert result.exit_code == 0, result.output
    assert "Added 3 customers to VIP" in result.stdout
    assert member_ids(gw, group.id) == set(ids[:3])
    added = gw.events.list(type="customer_group.customer_added")
    assert [e.data["customer_id"] for e in added] == ids[:3]


def test_groups_add_from_a_csv_with_a_header_uses_the_id_or_email_column(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    ids = customers(gw, 3)
    group = gw.groups.create("VIP")
    csv = tmp_path / "export.csv"
    csv.write_text(
        "\ufeffName,Email,Id\n"  # a byte-order mark, as spreadsheets write it
        f"zero,c0@example.com,\none,,{ids[1]}\ntwo,ignored@example.com,{ids[2]}\n"
    )

    result = cli("groups", "add", group.id, "--csv", csv, "--db", database_url)

    assert result.exit_code == 0, result.output
    assert member_ids(gw, group.id) == set(ids)


def test_groups_add_writes_in_chunks_of_one_service_call_each(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path, recording: Recorder
) -> None:
    ids = customers(gw, 5)
    group = gw.groups.create("VIP")
    csv = tmp_path / "members.csv"
    csv.write_text("id\n" + "\n".join(ids) + "\n")

    result = cli(
        "groups",
        "add",
        "VIP",
        "--csv",
        csv,
        "--chunk-size",
        "2",
        "--db",
        database_url,
        env={"GROUPWIRE_PLUGINS": PLUGIN},
    )

    assert result.exit_code == 0, result.output
    assert recording.add_calls == [2, 2, 1]
    assert member_ids(gw, group.id) == set(ids)
    assert "5/5" in result.stderr  # the progress bar's last state


def test_groups_add_with_an_unknown_email_or_id_reports_them_all_and_writes_nothing(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    ids = customers(gw, 2)
    group = gw.groups.create("VIP")
    before = gw.events.last_sequence()
    csv = tmp_path / "members.csv"
    csv.write_text(f"c0@example.com\nnobody@example.com\n{ids[1]}\ncus_DOESNOTEXIST\n")

    result = cli("groups", "add", "VIP", "--csv", csv, "--db", database_url)

    assert result.exit_code == 1
    assert "2 entries name no customer (nothing was written)" in result.stderr
    assert "line 2: nobody@example.com (no customer with this email)" in result.stderr
    assert "line 4: cus_DOESNOTEXIST (no customer with this id)" in result.stderr
    assert member_ids(gw, group.id) == set()
    assert gw.events.last_sequence() == before


def test_groups_add_skip_unknown_adds_the_others_lists_the_unknown_and_exits_1(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    ids = customers(gw, 2)
    group = gw.groups.create("VIP")

    result = cli(
        "groups",
        "add",
        "VIP",
        "-c",
        ids[0],
        "-c",
        "ghost@example.com",
        "-c",
        "c1@example.com",
        "--skip-unknown",
        "--db",
        database_url,
    )

    assert result.exit_code == 1
    assert "--customer: ghost@example.com (no customer with this email)" in result.stderr
    assert "Added 2 customers to VIP" in result.stdout
    assert member_ids(gw, group.id) == set(ids)


def test_groups_add_stops_at_the_first_failing_chunk_and_keeps_the_chunks_before_it(
    cli: Invoke, gw: Groupwire, database_url: str, recording: Recorder
) -> None:
    ids = customers(gw, 5)
    gw.customers.update(ids[2], metadata={"refuse": True})  # in the second chunk of two
    group = gw.groups.create("VIP")
    options = [arg for cid in ids for arg in ("-c", cid)]

    result = cli(
        "groups",
        "add",
        "VIP",
        *options,
        "--chunk-size",
        "2",
        "--db",
        database_url,
        env={"GROUPWIRE_PLUGINS": PLUGIN},
    )

    assert result.exit_code == 1
    assert recording.add_calls == [2, 2]  # the third chunk is never tried
    assert member_ids(gw, group.id) == set(ids[:2])
    assert "Added 2 customers to VIP" in result.stdout
    assert "customers 3-4 of 5 were not written" in result.stderr
    assert "c2@example.com is refused by the test plugin (not_allowed)" in result.stderr

    # fixing the cause and running the same command again finishes the job
    gw.customers.update(ids[2], metadata={"refuse": ""})
    again = cli(
        "groups",
        "add",
        "VIP",
        *options,
        "--chunk-size",
        "2",
        "--db",
        database_url,
        env={"GROUPWIRE_PLUGINS": PLUGIN},
    )
    assert again.exit_code == 0, again.output
    assert "Added 3 customers to VIP (0 already members" in again.stdout
    assert "2 customers written by an earlier run, skipped" in again.stdout
    assert member_ids(gw, group.id) == set(ids)
    assert event_types(gw).count("customer_group.customer_added") == 5


def test_an_add_interrupted_after_a_commit_and_run_again_applies_each_chunk_once(
    cli: Invoke, gw: Groupwire, database_url: str, recording: Recorder, tmp_path: Path
) -> None:
    ids = customers(gw, 6)
    group = gw.groups.create("VIP")
    csv = tmp_path / "members.csv"
    csv.write_text("id\n" + "\n".join(ids) + "\n")
    command = ["groups", "add", "VIP", "--csv", csv, "--chunk-size", "2", "--db", database_url]
    recording.interrupt_after = 2  # Ctrl-C right after the second chunk committed

    interrupted = cli(*command, env={"GROUPWIRE_PLUGINS": PLUGIN})
    assert interrupted.exit_code != 0
    assert member_ids(gw, group.id) == set(ids[:4])
    gw.groups.remove_customers(group.id, [ids[0]])  # someone else's change in between
    recording.reset()
    again = cli(*command, env={"GROUPWIRE_PLUGINS": PLUGIN})

    assert again.exit_code == 0, again.output
    assert recording.add_calls == [2]  # only the chunk never written reaches the service
    assert "Added 2 customers to VIP" in again.stdout
    assert "4 customers written by an earlier run, skipped" in again.stdout
    assert member_ids(gw, group.id) == set(ids[1:])  # the earlier chunk is not redone
    added = gw.events.list(type="customer_group.customer_added", limit=None)
    assert sorted(e.data["customer_id"] for e in added) == sorted(ids)  # each once


def test_groups_add_fresh_writes_every_chunk_again(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    ids = customers(gw, 2)
    group = gw.groups.create("VIP")
    command = ["groups", "add", "VIP", "-c", ids[0], "-c", ids[1], "--db", database_url]
    assert cli(*command).exit_code == 0
    gw.groups.remove_customers(group.id, [ids[0]])

    again = cli(*command, "--fresh")

    assert again.exit_code == 0, again.output
    assert "Added 1 customer to VIP (1 already members" in again.stdout
    assert member_ids(gw, group.id) == set(ids)


def test_groups_remove_by_option_and_by_csv_removes_members_only(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    ids = customers(gw, 4)
    group = gw.groups.create("VIP")
    gw.groups.add_customers(group.id, ids[:3])

    by_option = cli("groups", "remove", "VIP", "-c", "c0@example.com", "--db", database_url)
    assert by_option.exit_code == 0, by_option.output
    csv = tmp_path / "leavers.csv"
    csv.write_text("email\nc1@example.com\nc3@example.com\n")  # c3 is not a member
    by_csv = cli("groups", "remove", "VIP", "--csv", csv, "--db", database_url)

    assert by_csv.exit_code == 0, by_csv.output
    assert "Removed 1 customer from VIP (1 not members" in by_csv.stdout
    assert member_ids(gw, group.id) == {ids[2]}
    removed = gw.events.list(type="customer_group.customer_removed")
    assert [(e.data["customer_id"], e.data["reason"]) for e in removed] == [
        (ids[0], "removed"),
        (ids[1], "removed"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --customer"),
        (["-c", "x@example.com", "--csv", "members.csv"], "give either --customer"),
    ],
)
def test_groups_add_needs_exactly_one_source_of_customers(
    cli: Invoke, gw: Groupwire, database_url: str, args: list[str], message: str
) -> None:
    gw.groups.create("VIP")
    result = cli("groups", "add", "VIP", *args, "--db", database_url)
    assert result.exit_code == 2
    assert message in result.output


def test_groups_add_to_an_unknown_group_or_from_a_missing_file_exits_1(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    customers(gw, 1)
    unknown_group = cli("groups", "add", "Nope", "-c", "c0@example.com", "--db", database_url)
    assert unknown_group.exit_code == 1
    assert "Customer group with id: Nope not found" in unknown_group.stderr
    gw.groups.create("VIP")
    missing = cli("groups", "add", "VIP", "--csv", tmp_path / "missing.csv", "--db", database_url)
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr
    header_only = tmp_path / "header.csv"
    header_only.write_text("email\n")
    empty = cli("groups", "add", "VIP", "--csv", header_only, "--db", database_url)
    assert empty.exit_code == 1
    assert "names no customers" in empty.stderr
    assert gw.events.list(type="customer_group.customer_added") == []


def test_groups_delete_removes_the_members_with_reason_group_deleted(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    ids = customers(gw, 2)
    group = gw.groups.create("Trial")
    gw.groups.add_customers(group.id, ids)

    result = cli("groups", "delete", "Trial", "--db", database_url)

    assert result.exit_code == 0, result.output
    assert "(2 members removed)" in result.stdout
    removed = gw.events.list(type="customer_group.customer_removed")
    assert {e.data["reason"] for e in removed} == {"group_deleted"} and len(removed) == 2
    assert gw.groups.list().count == 0


def test_customers_create_and_list_with_a_group_filter(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    created = cli(
        "customers",
        "create",
        "Ann@Example.com",
        "--first-name",
        "Ann",
        "--json",
        "--db",
        database_url,
    )
    assert created.exit_code == 0, created.output
    [ann] = json_lines(created.stdout)
    assert (ann["email"], ann["first_name"]) == ("ann@example.com", "Ann")
    other = gw.customers.create("bo@example.com")
    group = gw.groups.create("VIP")
    gw.groups.add_customers(group.id, [ann["id"]])

    everyone = cli("customers", "list", "--json", "--db", database_url)
    members = cli("customers", "list", "--group", "VIP", "--json", "--db", database_url)

    assert [c["id"] for c in json_lines(everyone.stdout)] == [ann["id"], other.id]
    assert [c["id"] for c in json_lines(members.stdout)] == [ann["id"]]
    invalid = cli("customers", "create", "not-an-email", "--db", database_url)
    assert invalid.exit_code == 1 and "invalid_data" in invalid.stderr


def test_customers_create_without_an_email_and_list_it(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    created = cli("customers", "create", "--first-name", "John", "--db", database_url)
    as_json = cli("customers", "create", "--first-name", "Jane", "--json", "--db", database_url)

    assert created.exit_code == 0, created.output
    [john, jane] = gw.customers.list().items
    assert created.stdout.strip() == f"Created customer — {john.id}"
    assert json_lines(as_json.stdout)[0]["email"] is None
    listed = cli("customers", "list", "--db", database_url)
    assert listed.exit_code == 0, listed.output
    assert [line.split()[:3] for line in listed.stdout.splitlines() if "cus_" in line] == [
        ["│", john.id, "│"],
        ["│", jane.id, "│"],
    ]
    assert listed.stdout.count("—") == 2 and "None" not in listed.stdout


def test_groups_add_from_a_csv_row_without_email_adds_the_customer_by_its_id(
    cli: Invoke, gw: Groupwire, database_url: str, tmp_path: Path
) -> None:
    john = gw.customers.create(first_name="John")
    ada = gw.customers.create("ada@example.com")
    group = gw.groups.create("VIP")
    csv = tmp_path / "export.csv"
    csv.write_text(f"id,email,first_name\n{john.id},,John\n,ada@example.com,Ada\n")

    result = cli("groups", "add", "VIP", "--csv", csv, "--db", database_url)
    members = cli("groups", "members", "VIP", "--db", database_url)

    assert result.exit_code == 0, result.output
    assert member_ids(gw, group.id) == {john.id, ada.id}
    assert members.exit_code == 0 and "—" in members.stdout and "None" not in members.stdout
