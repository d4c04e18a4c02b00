"""``groupwire keys``: create (secret shown once), list, revoke; on SQLite and PostgreSQL."""

from __future__ import annotations

from groupwire import Groupwire
from groupwire.auth import keys
from tests.cli.conftest import Invoke, json_lines


def test_keys_create_prints_a_working_secret_once_and_list_never_shows_it(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    created = cli(
        "keys",
        "create",
        "sync",
        "--scope",
        "read",
        "--scope",
        "write",
        "--json",
        "--db",
        database_url,
    )
    assert created.exit_code == 0, created.output
    [key] = json_lines(created.stdout)
    assert (key["name"], key["scopes"], key["revoked_at"]) == ("sync", ["read", "write"], None)
    found = keys.authenticate(gw.engine, key["secret"])
    assert found is not None and found.id == key["id"]

    listed = cli("keys", "list", "--json", "--db", database_url)
    assert listed.exit_code == 0, listed.output
    assert [(k["id"], k["name"]) for k in json_lines(listed.stdout)] == [(key["id"], "sync")]
    assert key["secret"] not in listed.output

    human = cli("keys", "create", "ops", "--scope", "admin", "--db", database_url)
    assert human.exit_code == 0, human.output
    assert "Secret: gw_sk_" in human.stdout and "not shown again" in human.stderr


def test_keys_revoke_makes_the_secret_useless_and_list_shows_it_revoked(
    cli: Invoke, gw: Groupwire, database_url: str
) -> None:
    key, secret = keys.create_key(gw.engine, "old", ["read"])

    result = cli("keys", "revoke", key.id, "--db", database_url)

    assert result.exit_code == 0, result.output
    assert f"Revoked API key old {key.id}" in result.stdout
    assert keys.authenticate(gw.engine, secret) is None
    [listed] = json_lines(cli("keys", "list", "--json", "--db", database_url).stdout)
    assert listed["revoked_at"] is not None
    table = cli("keys", "list", "--db", database_url)
    assert "revoked" in table.stdout


def test_keys_bad_input_is_refused_clearly(cli: Invoke, gw: Groupwire, database_url: str) -> None:
    no_scope = cli("keys", "create", "x", "--db", database_url)
    bad_scope = cli("keys", "create", "x", "--scope", "root", "--db", database_url)
    unknown = cli("keys", "revoke", "apikey_NOPE", "--db", database_url)

    assert no_scope.exit_code == 2 and "--scope" in no_scope.output
    assert bad_scope.exit_code == 2 and "root" in bad_scope.output
    assert unknown.exit_code == 1 and "apikey_NOPE not found" in unknown.stderr
    assert keys.list_keys(gw.engine) == []
