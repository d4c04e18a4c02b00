"""Hooks: before-hooks veto or modify a change inside its transaction; after-hooks never undo."""

from __future__ import annotations

import sys
import textwrap

import pytest

from groupwire import Groupwire, HookRejected, hookimpl


class AllowListedDomains:
    """Refuses customers whose email domain is not on the list from joining VIP."""

    def __init__(self, domains):
        self.domains = set(domains)

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        if group.name != "VIP":
            return
        refused = [c.email for c in customers if c.email_domain not in self.domains]
        if refused:
            raise HookRejected(f"not on the allow-list: {', '.join(refused)}")


def test_a_veto_writes_nothing_emits_nothing_and_gives_the_reason(gw):
    gw.register(AllowListedDomains({"good.test"}))
    vip = gw.groups.create(name="VIP")
    good = gw.customers.create(email="a@good.test")
    bad = gw.customers.create(email="b@bad.test")
    before = gw.events.last_sequence()

    with pytest.raises(HookRejected) as error:
        gw.groups.add_customers(vip.id, [good.id, bad.id])

    assert error.value.reason == "not on the allow-list: b@bad.test"
    assert gw.groups.members(vip.id) == []
    assert gw.events.last_sequence() == before
    gw.groups.add_customers(vip.id, [good.id])
    assert [c.id for c in gw.groups.members(vip.id)] == [good.id]


def test_a_veto_on_create_leaves_no_row_and_no_event(gw):
    class NoTestGroups:
        @hookimpl
        def before_create_customer_group(self, draft, context):
            if draft.name.startswith("test"):
                raise HookRejected("test groups are not allowed")

    gw.register(NoTestGroups())
    with pytest.raises(HookRejected):
        gw.groups.create(name="test-1")
    assert gw.groups.list().count == 0
    assert gw.events.list() == []


def test_a_modifying_hook_changes_what_is_stored_and_emitted(gw):
    class Normalise:
        @hookimpl
        def before_create_customer_group(self, draft, context):
            draft.name = draft.name.strip().title()
            draft.metadata = {**(draft.metadata or {}), "created_via": context.actor}

        @hookimpl
        def before_update_customer_group(self, group, update, context):
            if "name" in update.values:
                update.values["name"] = update.values["name"].upper()

    gw.register(Normalise())
    from groupwire import Context

    group = gw.groups.create(name="  vip members ", context=Context(actor="apikey_9"))
    assert group.name == "Vip Members"
    assert gw.groups.get(group.id).metadata == {"created_via": "apikey_9"}
    assert gw.events.list()[0].data["name"] == "Vip Members"

    gw.groups.update(group.id, name="gold")
    assert gw.groups.get(group.id).name == "GOLD"


def test_a_hook_may_leave_customers_out_of_a_bulk_add(gw):
    class SkipUnverified:
        @hookimpl
        def before_add_customer_to_group(self, group, customers, context):
            customers[:] = [c for c in customers if (c.metadata or {}).get("verified")]

    gw.register(SkipUnverified())
    vip = gw.groups.create(name="VIP")
    yes = gw.customers.create(email="y@shop.test", metadata={"verified": True})
    no = gw.customers.create(email="n@shop.test")

    change = gw.groups.add_customers(vip.id, [no.id, yes.id])

    assert change.added == [yes.id]
    assert [
        e.data["customer_id"] for e in gw.events.list(type="customer_group.customer_added")
    ] == [yes.id]


def test_a_modifying_hook_result_is_validated_again(gw):
    class Breaks:
        @hookimpl
        def before_create_customer_group(self, draft, context):
            draft.name = ""

    gw.register(Breaks())
    from groupwire import InvalidData

    with pytest.raises(InvalidData):
        gw.groups.create(name="VIP")
    assert gw.events.list() == []


def test_a_failing_after_hook_is_reported_and_does_not_undo_the_change(gw):
    seen = []

    class Fails:
        @hookimpl
        def after_create_customer_group(self, group, context):
            raise RuntimeError("CRM is down")

    class Works:
        @hookimpl
        def after_create_customer_group(self, group, context):
            seen.append(group.name)

    gw.register(Fails())
    gw.register(Works())

    group = gw.groups.create(name="VIP")

    assert gw.groups.get(group.id).name == "VIP"
    assert [e.type for e in gw.events.list()] == ["customer_group.created"]
    assert seen == ["VIP"]
    [failure] = gw.hook_failures
    assert failure.hook == "after_create_customer_group"
    assert "CRM is down" in failure.error


def test_after_hooks_see_the_committed_result(gw):
    calls = []

    class Records:
        @hookimpl
        def after_add_customer_to_group(self, group, customer_ids, context):
            calls.append(("added", group.id, list(customer_ids)))

        @hookimpl
        def after_remove_customer_from_group(self, group, customer_ids, reason, context):
            calls.append(("removed", group.id, list(customer_ids), reason))

        @hookimpl
        def after_delete_customer_group(self, group, removed_customer_ids, context):
            calls.append(("deleted", group.id, list(removed_customer_ids)))

    gw.register(Records())
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test")
    gw.groups.add_customers(vip.id, [ada.id])
    gw.groups.add_customers(vip.id, [ada.id])  # no-op: no after-hook
    gw.groups.delete(vip.id)

    assert calls == [
        ("added", vip.id, [ada.id]),
        ("removed", vip.id, [ada.id], "group_deleted"),
        ("deleted", vip.id, [ada.id]),
    ]


def test_plugins_load_from_configuration_and_from_entry_points(database_url, tmp_path, monkeypatch):
    package = tmp_path / "shop_rules"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from groupwire import HookRejected, hookimpl

            @hookimpl
            def before_create_customer(draft, context):
                if draft.email.endswith("@blocked.test"):
                    raise HookRejected("blocked domain")
            """
        )
    )
    (tmp_path / "entry_rules.py").write_text(
        textwrap.dedent(
            """
            from groupwire import hookimpl

            @hookimpl
            def before_create_customer_group(draft, context):
                draft.description = draft.description or "from an entry point"
            """
        )
    )
    dist = tmp_path / "entry_rules-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-rules\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[groupwire.plugins]\nrules = entry_rules\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GROUPWIRE_PLUGINS", "shop_rules")

    with Groupwire.open(database_url) as gw:
        with pytest.raises(HookRejected, match="blocked domain"):
            gw.customers.create(email="x@blocked.test")
        assert gw.groups.create(name="VIP").description == "from an entry point"
    sys.modules.pop("shop_rules", None)
    sys.modules.pop("entry_rules", None)


# --- a change about to be made elsewhere: Service.run_before_hook ----------------------------


class GatekeeperForElsewhere:
    @hookimpl
    def before_create_customer_group(self, draft, context):
        if draft.name == "veto":
            raise HookRejected("no")
        draft.name = draft.name.strip() or ""

    @hookimpl
    def before_remove_customer_from_group(self, group, customers, reason, context):
        customers[:] = [c for c in customers if c.email_domain != "keep.test"]


def test_run_before_hook_returns_the_modified_change_and_writes_nothing(gw):
    from groupwire.domain.changes import GroupDraft
    from groupwire.service import BeforeHook

    gw.register(GatekeeperForElsewhere())

    call = gw.service.run_before_hook(
        BeforeHook("before_create_customer_group", {"draft": GroupDraft(name="  Gold  ")})
    )

    assert call.arguments["draft"].name == "Gold"
    assert gw.groups.list().count == 0
    assert gw.events.list() == []
    with pytest.raises(HookRejected, match="no"):
        gw.service.run_before_hook(
            BeforeHook("before_create_customer_group", {"draft": GroupDraft(name="veto")})
        )


def test_run_before_hook_validates_what_the_hooks_left(gw):
    from groupwire.domain.changes import GroupDraft
    from groupwire.domain.errors import InvalidData
    from groupwire.service import BeforeHook

    gw.register(GatekeeperForElsewhere())

    with pytest.raises(InvalidData):
        gw.service.run_before_hook(
            BeforeHook("before_create_customer_group", {"draft": GroupDraft(name="   ")})
        )


def test_run_before_hook_filters_removals_only_when_the_operation_may(gw):
    from groupwire.service import BeforeHook

    gw.register(GatekeeperForElsewhere())
    group = gw.groups.create(name="G")
    keep = gw.customers.create(email="a@keep.test")
    go = gw.customers.create(email="b@go.test")

    def removal(reason):
        arguments = {"group": group, "customers": [keep, go], "reason": reason}
        call = gw.service.run_before_hook(
            BeforeHook("before_remove_customer_from_group", arguments)
        )
        return [c.id for c in call.arguments["customers"]]

    assert removal("removed") == [go.id]
    assert removal("group_deleted") == [keep.id, go.id]
