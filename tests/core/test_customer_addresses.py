"""Customer addresses through the library: hooks, events, defaults and the customer's deletion."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError

from groupwire import Context, HookRejected, InvalidData, NotFound, hookimpl
from groupwire.store import migrate
from groupwire.store.address_tables import customer_address


class Recorder:
    """Records every address hook call; upper-cases country codes on create and update."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def before_create_customer_address(self, customer, draft, context):
        self.calls.append(("before_create", customer.id))
        if draft.country_code:
            draft.country_code = draft.country_code.upper()

    @hookimpl
    def after_create_customer_address(self, customer, address, context):
        self.calls.append(("after_create", address.id))

    @hookimpl
    def before_update_customer_address(self, customer, address, update, context):
        self.calls.append(("before_update", address.id))
        if update.values.get("country_code"):
            update.values["country_code"] = update.values["country_code"].upper()

    @hookimpl
    def after_update_customer_address(self, customer, address, changes, context):
        self.calls.append(("after_update", (address.id, changes)))

    @hookimpl
    def before_delete_customer_address(self, customer, address, reason, context):
        self.calls.append(("before_delete", (address.id, reason)))

    @hookimpl
    def after_delete_customer_address(self, customer, address, reason, context):
        self.calls.append(("after_delete", (address.id, reason, address.deleted_at is not None)))


def test_each_address_change_runs_its_hooks_and_records_its_event(gw):
    recorder = Recorder()
    gw.register(recorder)
    ada = gw.customers.create(email="ada@shop.test")
    context = Context(actor="apikey_1", correlation_id="req_1")

    home = gw.customers.addresses.create(
        ada.id, address_1="1 Main St", country_code="fr", metadata={"door": "b"}, context=context
    )
    updated = gw.customers.addresses.update(ada.id, home.id, country_code="de", context=context)
    deleted = gw.customers.addresses.delete(ada.id, home.id, context=context)

    assert home.country_code == "FR" and updated.country_code == "DE"
    assert deleted.deleted_at is not None
    assert recorder.calls == [
        ("before_create", ada.id),
        ("after_create", home.id),
        ("before_update", home.id),
        ("after_update", (home.id, {"country_code": {"old": "FR", "new": "DE"}})),
        ("before_delete", (home.id, "deleted")),
        ("after_delete", (home.id, "deleted", True)),
    ]
    created, changed, removed = gw.events.list(type="customer.address_*")
    assert created.type == "customer.address_created"
    assert created.data == {
        "id": home.id,
        "customer_id": ada.id,
        "address_name": None,
        "is_default_shipping": False,
        "is_default_billing": False,
        "company": None,
        "first_name": None,
        "last_name": None,
        "address_1": "1 Main St",
        "address_2": None,
        "city": None,
        "country_code": "FR",
        "province": None,
        "postal_code": None,
        "phone": None,
        "metadata": {"door": "b"},
    }
    assert changed.data == {
        "id": home.id,
        "customer_id": ada.id,
        "changes": {"country_code": {"old": "FR", "new": "DE"}},
    }
    assert removed.data == {"id": home.id, "customer_id": ada.id, "reason": "deleted"}
    for event in (created, changed, removed):
        assert event.subject == event.partition == ada.id
        assert (event.actor, event.correlation_id) == ("apikey_1", "req_1")
    assert gw.events.list(subject=ada.id)[0].type == "customer.created"


def test_a_customer_has_at_most_one_live_default_of_each_kind(gw):
    ada = gw.customers.create(email="ada@shop.test")
    both = gw.customers.addresses.create(ada.id, is_default_shipping=True, is_default_billing=True)

    newer = gw.customers.addresses.create(ada.id, is_default_shipping=True, is_default_billing=True)

    cleared = gw.events.list(type="customer.address_updated")
    assert [e.data for e in cleared] == [
        {
            "id": both.id,
            "customer_id": ada.id,
            "changes": {
                "is_default_shipping": {"old": True, "new": False},
                "is_default_billing": {"old": True, "new": False},
            },
        }
    ]
    old = gw.customers.addresses.get(ada.id, both.id)
    assert (old.is_default_shipping, old.is_default_billing) == (False, False)
    assert gw.customers.addresses.get(ada.id, newer.id).is_default_shipping is True
    # the database refuses a second live default even when the service is bypassed
    with pytest.raises(IntegrityError), gw.engine.begin() as conn:
        conn.execute(
            insert(customer_address).values(
                id="cuaddr_x",
                customer_id=ada.id,
                is_default_shipping=True,
                created_at=newer.created_at,
                updated_at=newer.created_at,
            )
        )


def test_unknown_customers_addresses_and_bad_values_are_refused_before_anything_is_written(gw):
    ada = gw.customers.create(email="ada@shop.test")
    bob = gw.customers.create(email="bob@shop.test")
    bobs = gw.customers.addresses.create(bob.id, city="Paris")
    before = gw.events.last_sequence()

    with pytest.raises(NotFound, match="Customer with id: cus_nope not found"):
        gw.customers.addresses.create("cus_nope", city="Paris")
    with pytest.raises(NotFound, match=f"Customer address with id: {bobs.id} not found"):
        gw.customers.addresses.update(ada.id, bobs.id, city="Lyon")
    with pytest.raises(NotFound):
        gw.customers.addresses.delete(ada.id, bobs.id)
    with pytest.raises(NotFound):
        gw.customers.addresses.list("cus_nope")
    with pytest.raises(InvalidData, match="Unknown address fields: street"):
        gw.customers.addresses.create(ada.id, street="1 Main St")
    with pytest.raises(InvalidData, match="is_default_billing must be a boolean"):
        gw.customers.addresses.update(bob.id, bobs.id, is_default_billing=None)
    with pytest.raises(InvalidData, match="city must be a string or null"):
        gw.customers.addresses.create(ada.id, city=7)

    assert gw.events.last_sequence() == before
    assert gw.customers.addresses.list(ada.id).count == 0


def test_a_hook_that_adds_an_unknown_field_is_refused(gw):
    class Sneaky:
        @hookimpl
        def before_update_customer_address(self, customer, address, update, context):
            update.values["street"] = "1 Main St"

    gw.register(Sneaky())
    ada = gw.customers.create(email="ada@shop.test")
    home = gw.customers.addresses.create(ada.id, city="Paris")

    with pytest.raises(InvalidData):
        gw.customers.addresses.update(ada.id, home.id, city="Lyon")
    assert gw.customers.addresses.get(ada.id, home.id).city == "Paris"


def test_deleting_a_customer_deletes_its_addresses_with_hooks_and_events(gw):
    recorder = Recorder()
    ada = gw.customers.create(email="ada@shop.test")
    home = gw.customers.addresses.create(ada.id, city="Paris")
    work = gw.customers.addresses.create(ada.id, city="Lyon")
    gw.register(recorder)

    gw.customers.delete(ada.id)

    assert recorder.calls == [
        ("before_delete", (home.id, "customer_deleted")),
        ("before_delete", (work.id, "customer_deleted")),
        ("after_delete", (home.id, "customer_deleted", True)),
        ("after_delete", (work.id, "customer_deleted", True)),
    ]
    assert [(e.type, e.data.get("reason")) for e in gw.events.list(subject=ada.id)][-3:] == [
        ("customer.address_deleted", "customer_deleted"),
        ("customer.address_deleted", "customer_deleted"),
        ("customer.deleted", None),
    ]


def test_an_address_hook_may_veto_the_deletion_of_its_customer(gw):
    class KeepBilling:
        @hookimpl
        def before_delete_customer_address(self, customer, address, reason, context):
            if address.is_default_billing:
                raise HookRejected("customers with a billing address stay")

    gw.register(KeepBilling())
    ada = gw.customers.create(email="ada@shop.test")
    vip = gw.groups.create(name="VIP")
    gw.groups.add_customers(vip.id, [ada.id])
    billing = gw.customers.addresses.create(ada.id, is_default_billing=True)
    before = gw.events.last_sequence()

    with pytest.raises(HookRejected, match="customers with a billing address stay"):
        gw.customers.delete(ada.id)

    assert gw.events.last_sequence() == before
    assert gw.customers.get(ada.id).deleted_at is None
    assert gw.customers.addresses.get(ada.id, billing.id).deleted_at is None
    assert [c.id for c in gw.groups.members(vip.id)] == [ada.id]


def test_the_address_migration_downgrades_and_upgrades_again(gw):
    ada = gw.customers.create(email="ada@shop.test")
    gw.customers.addresses.create(ada.id, city="Paris")
    config = migrate.alembic_config()

    with gw.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008_idempotency_keys")
        assert not inspect(conn).has_table("customer_address")
    migrate.upgrade(gw.engine)

    assert gw.customers.addresses.list(ada.id).count == 0
    assert gw.customers.addresses.create(ada.id, city="Lyon").city == "Lyon"
