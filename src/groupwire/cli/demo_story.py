"""What ``groupwire demo`` does once its database is open: the before-hook, the subscribers
and the scripted changes (see :mod:`groupwire.cli.demo`).

Imported by the command when it runs, so that the help of any command imports neither Rich's
tables nor pluggy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from groupwire.cli.common import display_url, fail
from groupwire.domain import events as ev
from groupwire.domain.changes import Context
from groupwire.domain.errors import HookRejected
from groupwire.domain.models import Customer, CustomerGroup, Event
from groupwire.hooks import hookimpl

if TYPE_CHECKING:
    from groupwire.app import Groupwire

ACTOR = "demo"
PEOPLE: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("alice", "Alice", "Archer", {}),
    ("bob", "Bob", "Baker", {}),
    ("carol", "Carol", "Chen", {}),
    ("dave", "Dave", "Diaz", {}),
    ("mallory", "Mallory", "Moss", {"unpaid_invoice": "INV-1042"}),
)
STYLES = {
    ev.CUSTOMER_CREATED: "green",
    ev.GROUP_CREATED: "green",
    ev.CUSTOMER_ADDED: "bold green",
    ev.CUSTOMER_REMOVED: "bold magenta",
    ev.CUSTOMER_DELETED: "red",
    ev.GROUP_DELETED: "red",
}


class VipPolicy:
    """The demo's before-hook: VIP is refused to customers with an unpaid invoice."""

    def __init__(self) -> None:
        self.vip_group_id: str | None = None

    @hookimpl
    def before_add_customer_to_group(
        self, group: CustomerGroup, customers: list[Customer], context: Context
    ) -> None:
        if group.id != self.vip_group_id:
            return
        for customer in customers:
            invoice = (customer.metadata or {}).get("unpaid_invoice")
            if invoice:
                raise HookRejected(f"{customer.email} has an unpaid invoice ({invoice})")


@dataclass
class Labels:
    """Readable names for the ids in events (filled as the demo creates things)."""

    names: dict[str, str] = field(default_factory=dict)

    def __call__(self, some_id: str) -> str:
        return self.names.get(some_id, some_id)

    def describe(self, event: Event) -> str:
        data = event.data
        if event.type == ev.CUSTOMER_CREATED:
            return str(data.get("email"))
        if event.type == ev.GROUP_CREATED:
            return str(data.get("name"))
        if event.type == ev.CUSTOMER_ADDED:
            return f"{self(data['group_id'])} [green]+[/] {self(data['customer_id'])}"
        if event.type == ev.CUSTOMER_REMOVED:
            return (
                f"{self(data['group_id'])} [magenta]-[/] {self(data['customer_id'])} "
                f"[dim](reason: {data.get('reason')})[/]"
            )
        if event.type == ev.GROUP_DELETED:
            return f"{data.get('name')} [dim](members at deletion: {data.get('member_count')})[/]"
        return self(event.subject)


class Demo:
    def __init__(
        self,
        gw: Groupwire,
        policy: VipPolicy,
        console: Console,
        tag: str,
        pause: float,
        *,
        temporary: bool,
    ) -> None:
        self.gw = gw
        self.policy = policy
        self.console = console
        self.tag = tag
        self.pause = pause
        self.temporary = temporary
        self.labels = Labels()
        self.context = Context(actor=ACTOR, correlation_id=f"demo{tag}")
        self.customers: dict[str, Customer] = {}
        self.groups: dict[str, CustomerGroup] = {}
        self.first_sequence = gw.events.last_sequence()
        self.vetoes = 0

    # --- subscribers (run in the relay's threads) -------------------------------------------

    def print_event(self, event: Event) -> None:
        style = STYLES.get(event.type, "yellow")
        self.console.print(
            f"  [dim]delivered #{event.sequence:<3}[/] [{style}]{event.type:<32}[/] "
            f"{self.labels.describe(event)}",
            soft_wrap=True,
        )

    def welcome_vip(self, event: Event) -> None:
        if event.data["group_id"] != self.policy.vip_group_id:
            return
        customer = self.customers_by_id.get(event.data["customer_id"])
        name = customer.first_name if customer else event.data["customer_id"]
        self.console.print(
            f"  [bold yellow]vip-welcome[/]   Welcome to VIP, {escape(str(name))}! "
            "[dim](a subscriber reacting to customer_added)[/]",
            soft_wrap=True,
        )

    @property
    def customers_by_id(self) -> dict[str, Customer]:
        return {c.id: c for c in self.customers.values()}

    # --- the story ---------------------------------------------------------------------------

    def run(self) -> None:
        gw, c = self.gw, self.console
        gw.subscribe("*", self.print_event, name="demo.printer", from_now=True)
        gw.subscribe(ev.CUSTOMER_ADDED, self.welcome_vip, name="demo.vip_welcome", from_now=True)
        gw.start()
        where = (
            "a temporary SQLite file" if self.temporary else display_url(gw.settings.database_url)
        )
        c.rule("[bold]Groupwire demo")
        c.print(
            f"Database: {escape(where)}. Subscribers: [bold]demo.printer[/] (every event) and "
            "[bold]demo.vip_welcome[/] (customer_added). Before-hook: VIP is refused to "
            "customers with an unpaid invoice.",
            soft_wrap=True,
        )
        self.step("Five customers sign up", self.create_customers)
        self.step("The shop creates the groups VIP, Trial and Paid", self.create_groups)
        self.step("Alice, Bob and Dave start a trial", self.start_trials)
        self.step("Carol and Mallory are proposed for VIP", self.vip_with_veto)
        self.step("Alice and Carol join VIP", self.vip)
        self.step("Alice converts: Trial -> Paid, in one transaction", self.convert)
        self.step("Bob closes his account", self.bob_leaves)
        self.step("The trial programme ends: the Trial group is deleted", self.end_trials)
        self.summary()

    def step(self, title: str, action: Callable[[], Any]) -> None:
        self.console.print(f"\n[bold cyan]>[/] [bold]{escape(title)}[/]", soft_wrap=True)
        action()
        if not self.gw.drain(timeout=10):
            self.console.print("  [red]the relay is late; carrying on[/]")
        if self.pause:
            time.sleep(self.pause)

    def create_customers(self) -> None:
        for handle, first, last, metadata in PEOPLE:
            customer = self.gw.customers.create(
                f"{handle}{self.tag}@example.com",
                first_name=first,
                last_name=last,
                metadata=metadata or None,
                context=self.context,
            )
            self.customers[handle] = customer
            self.labels.names[customer.id] = customer.email or customer.id

    def create_groups(self) -> None:
        for name, description in (
            ("VIP", "Best customers: free shipping"),
            ("Trial", "Trying the membership"),
            ("Paid", "Paying members"),
        ):
            group = self.gw.groups.create(
                f"{name}{self.tag}", description=description, context=self.context
            )
            self.groups[name] = group
            self.labels.names[group.id] = group.name
        self.policy.vip_group_id = self.groups["VIP"].id

    def ids(self, *handles: str) -> list[str]:
        return [self.customers[h].id for h in handles]

    def start_trials(self) -> None:
        self.gw.groups.add_customers(
            self.groups["Trial"].id, self.ids("alice", "bob", "dave"), context=self.context
        )

    def vip_with_veto(self) -> None:
        before = self.gw.events.last_sequence()
        try:
            self.gw.groups.add_customers(
                self.groups["VIP"].id, self.ids("carol", "mallory"), context=self.context
            )
        except HookRejected as veto:
            self.vetoes += 1
            written = self.gw.events.last_sequence() - before
            self.console.print(
                f"  [bold red]VETO[/] by the before-hook: {escape(veto.reason)}. "
                f"Nothing written, {written} events recorded (Carol was not added either: "
                "one call, all or nothing).",
                soft_wrap=True,
            )
        else:  # pragma: no cover - the policy always refuses Mallory
            fail("the demo's before-hook did not veto the change")

    def vip(self) -> None:
        self.gw.groups.add_customers(
            self.groups["VIP"].id, self.ids("alice", "carol"), context=self.context
        )

    def convert(self) -> None:
        self.gw.customers.update_groups(
            self.customers["alice"].id,
            add=[self.groups["Paid"].id],
            remove=[self.groups["Trial"].id],
            context=self.context,
        )

    def bob_leaves(self) -> None:
        self.gw.customers.delete(self.customers["bob"].id, context=self.context)

    def end_trials(self) -> None:
        self.gw.groups.delete(self.groups["Trial"].id, context=self.context)

    # --- the summary -------------------------------------------------------------------------

    def summary(self) -> None:
        c = self.console
        events = self.gw.events.list(after=self.first_sequence, limit=None)
        c.print()
        c.rule("[bold]Summary")
        by_type = Counter(e.type for e in events)
        counts = Table(title="Events by type", title_justify="left")
        counts.add_column("type")
        counts.add_column("count", justify="right")
        for event_type, count in sorted(by_type.items()):
            counts.add_row(event_type, str(count))
        counts.add_row("[bold]total[/]", f"[bold]{len(events)}[/]")
        c.print(counts)

        live = {name: g for name, g in self.groups.items() if name != "Trial"}
        memberships = Table(title="Final memberships", title_justify="left")
        memberships.add_column("group")
        memberships.add_column("members")
        in_database: set[tuple[str, str]] = set()
        for group in live.values():
            members = self.gw.groups.members(group.id)
            in_database |= {(group.id, m.id) for m in members}
            memberships.add_row(group.name, ", ".join(m.email or m.id for m in members) or "-")
        memberships.add_row(f"{self.groups['Trial'].name} (deleted)", "-")
        c.print(memberships)

        folded: set[tuple[str, str]] = set()
        for event in events:
            if event.type == ev.CUSTOMER_ADDED:
                folded.add((event.data["group_id"], event.data["customer_id"]))
            elif event.type == ev.CUSTOMER_REMOVED:
                folded.discard((event.data["group_id"], event.data["customer_id"]))
        same = folded == in_database
        c.print(
            f"Vetoed changes: {self.vetoes} (no events). Replaying the membership events "
            f"reproduces the memberships in the database: "
            f"{'[bold green]yes[/]' if same else '[bold red]NO[/]'}",
            soft_wrap=True,
        )
        c.print(
            "\nNext: [bold]groupwire serve[/] (the Admin API), [bold]groupwire events tail "
            "--follow[/], and docs/cli.md."
            + (" The demo's database was temporary and is now removed." if self.temporary else ""),
            soft_wrap=True,
        )
        if not same:
            raise typer.Exit(1)
