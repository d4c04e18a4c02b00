"""A VIP welcome and an allow-list, in twenty lines of Groupwire.

Run it: ``uv run python examples/vip_welcome.py`` (it uses a throw-away SQLite file).
"""

from __future__ import annotations

import sys
import tempfile

from groupwire import Groupwire, HookRejected, hookimpl

ALLOWED_DOMAINS = {"shop.example", "partner.example"}


class VipAllowList:
    """A before-hook: only customers with an allowed email domain may join VIP."""

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        if group.name == "VIP":
            refused = [c.email or c.id for c in customers if c.email_domain not in ALLOWED_DOMAINS]
            if refused:
                raise HookRejected(f"VIP is for allow-listed domains only: {', '.join(refused)}")


def main(database_url: str) -> None:
    with Groupwire.open(database_url, plugins=[VipAllowList()]) as gw:

        @gw.subscriber("customer_group.customer_added")
        def send_vip_welcome(event):
            group = gw.groups.get(event.data["group_id"])
            if group.name == "VIP":
                customer = gw.customers.get(event.data["customer_id"])
                print(f"Welcome to VIP, {customer.first_name} <{customer.email}>!")

        gw.start()  # deliver events in the background, in order, at least once
        vip = gw.groups.create(name="VIP", description="Our best customers")
        ada = gw.customers.create(email="ada@shop.example", first_name="Ada")
        eve = gw.customers.create(email="eve@elsewhere.example", first_name="Eve")

        gw.groups.add_customers(vip.id, [ada.id])
        gw.drain()  # wait until the subscriber has seen everything committed so far

        try:
            gw.groups.add_customers(vip.id, [eve.id])
        except HookRejected as veto:
            print(f"Refused: {veto.reason}")

        for event in gw.events.list(subject=vip.id):
            print(event.sequence, event.type, event.data)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(f"sqlite:///{tmp}/shop.db")
