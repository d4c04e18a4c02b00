"""Customers without email, as Medusa 2.21 allows them, and the (email, has_account) key.

Medusa's customer table keeps (email, has_account) unique among live rows
(``IDX_customer_email_has_account_unique ... WHERE deleted_at IS NULL``): a guest and an
account may share an address, and customers without email never collide.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from groupwire import Duplicate, HookRejected, InvalidData
from groupwire.store import migrate
from groupwire.store import repository as repo
from groupwire.store.engine import create_store_engine

EXAMPLE = Path(__file__).parents[2] / "examples" / "vip_welcome.py"


def test_given_no_email_when_creating_a_customer_then_it_has_none_and_the_event_says_null(gw):
    john = gw.customers.create(first_name="John")
    jane = gw.customers.create(email=None, first_name="Jane")

    assert (john.email, john.has_account) == (None, False)
    assert gw.customers.get(jane.id).email is None
    created = gw.events.list(type="customer.created")
    assert [e.data["email"] for e in created] == [None, None]
    assert "email" in created[0].data


def test_given_two_customers_without_email_then_both_live_side_by_side(gw):
    first = gw.customers.create(first_name="A")
    second = gw.customers.create(first_name="B")

    assert first.id != second.id
    assert gw.customers.list().count == 2


def test_given_a_guest_when_an_account_takes_the_same_email_then_both_exist(gw):
    guest = gw.customers.create(email="a@b.co")
    account = gw.customers.create(email="a@b.co", has_account=True)

    assert {c.id for c in gw.customers.list(emails=["a@b.co"]).items} == {guest.id, account.id}


@pytest.mark.parametrize("has_account", [False, True])
def test_given_an_email_and_has_account_when_the_same_pair_is_created_then_medusas_error(
    gw, has_account
):
    gw.customers.create(email="a@b.co", has_account=has_account)

    with pytest.raises(Duplicate) as error:
        gw.customers.create(email=" A@B.co", has_account=has_account)

    flag = "true" if has_account else "false"
    expected = f"Customer with email: a@b.co, has_account: {flag}, already exists."
    assert error.value.message == expected
    assert len(gw.events.list(type="customer.created")) == 1


def test_given_a_customer_when_its_email_is_cleared_then_the_update_event_carries_null(gw):
    ada = gw.customers.create(email="ada@shop.test")

    cleared = gw.customers.update(ada.id, email=None)
    gw.customers.update(ada.id, email="ada@new.test")
    gw.customers.update(ada.id, email=None)
    gw.customers.delete(ada.id)

    assert cleared.email is None
    updates = gw.events.list(type="customer.updated")
    assert [e.data["changes"]["email"] for e in updates] == [
        {"old": "ada@shop.test", "new": None},
        {"old": None, "new": "ada@new.test"},
        {"old": "ada@new.test", "new": None},
    ]
    [deleted] = gw.events.list(type="customer.deleted")
    assert deleted.data["email"] is None


def test_given_an_update_to_a_taken_pair_then_refused_but_an_accounts_email_is_free(gw):
    gw.customers.create(email="taken@shop.test")
    gw.customers.create(email="account@shop.test", has_account=True)
    ada = gw.customers.create(first_name="Ada")

    with pytest.raises(Duplicate) as error:
        gw.customers.update(ada.id, email="taken@shop.test")
    moved = gw.customers.update(ada.id, email="account@shop.test")

    assert error.value.message == (
        "Customer with email: taken@shop.test, has_account: false, already exists."
    )
    assert moved.email == "account@shop.test"


@pytest.mark.parametrize("email", ["", "   ", "no-at-sign", "a@b"])
def test_given_an_email_then_it_must_still_be_a_valid_address(gw, email):
    ada = gw.customers.create(first_name="Ada")

    with pytest.raises(InvalidData):
        gw.customers.create(email=email)
    with pytest.raises(InvalidData):
        gw.customers.update(ada.id, email=email)
    assert len(gw.events.list()) == 1


def test_given_no_email_then_the_email_domain_is_empty_and_hooks_comparing_it_work(gw):
    ada = gw.customers.create(first_name="Ada")

    assert ada.email_domain == ""
    assert gw.customers.create(email="eve@elsewhere.example").email_domain == "elsewhere.example"


def test_given_the_database_itself_then_it_refuses_a_second_live_pair_but_not_null_emails(gw):
    base = gw.customers.create(email="race@shop.test")
    row = {
        "email": "race@shop.test",
        "has_account": False,
        "created_at": base.created_at,
        "updated_at": base.updated_at,
    }
    with gw.engine.begin() as conn:
        repo.insert_customer(conn, {**row, "id": "cus_account", "has_account": True})
        repo.insert_customer(conn, {**row, "id": "cus_null_1", "email": None})
        repo.insert_customer(conn, {**row, "id": "cus_null_2", "email": None})
    with pytest.raises(IntegrityError), gw.engine.begin() as conn:
        repo.insert_customer(conn, {**row, "id": "cus_twin"})


def test_given_members_before_the_upgrade_then_they_keep_their_groups_and_emails(database_url):
    engine = create_store_engine(database_url)
    try:
        migrate.upgrade(engine, "0009_customer_addresses")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customer (id, email, has_account, created_at, updated_at)"
                    " VALUES ('cus_old', 'old@shop.test', false, '2026-01-02 03:04:05',"
                    " '2026-01-02 03:04:05')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO customer_group (id, name, created_at, updated_at)"
                    " VALUES ('cusgroup_old', 'VIP', '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO customer_group_customer (customer_group_id, customer_id,"
                    " created_at) VALUES ('cusgroup_old', 'cus_old', '2026-01-02 03:04:05')"
                )
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert repo.get_customer(conn, "cus_old").email == "old@shop.test"  # type: ignore[union-attr]
            assert repo.member_ids(conn, "cusgroup_old") == ["cus_old"]
            if conn.dialect.name == "sqlite":  # foreign keys are back on after migrating
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_downgrading_below_optional_emails_refuses_while_a_customer_has_none(gw):
    gw.customers.create(first_name="John")

    with pytest.raises(RuntimeError, match="1 customers have no email"):
        migrate.downgrade(gw.engine, "0009_customer_addresses")
    assert gw.customers.list().count == 1


def test_downgrading_with_every_email_set_restores_the_email_only_key(gw):
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test")
    gw.groups.add_customers(vip.id, [ada.id])

    migrate.downgrade(gw.engine, "0009_customer_addresses")

    with gw.engine.connect() as conn:
        assert repo.member_ids(conn, vip.id) == [ada.id]
    with pytest.raises(IntegrityError), gw.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customer (id, email, has_account, created_at, updated_at)"
                " VALUES ('cus_x', NULL, false, '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
            )
        )


def test_given_the_readme_allow_list_hook_then_a_customer_without_email_is_refused_by_id(gw):
    spec = importlib.util.spec_from_file_location("vip_welcome", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    gw.register(example.VipAllowList())
    vip = gw.groups.create(name="VIP")
    john = gw.customers.create(first_name="John")

    with pytest.raises(HookRejected) as veto:
        gw.groups.add_customers(vip.id, [john.id])

    assert veto.value.reason == f"VIP is for allow-listed domains only: {john.id}"
    assert gw.groups.members(vip.id) == []
