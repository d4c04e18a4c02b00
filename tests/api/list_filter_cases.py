"""List queries and what Medusa 2.21.2 answers them, on one small world (see ``World``).

Each case was run against a real Medusa 2.21.2 (tests/medusa/test_list_filter_parity.py
runs them again there); ``{ada}``, ``{vip}``... stand for the ids of that world. The
expected answer names the rows returned (customers by first name, groups by name), in any
order, or is a status for a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

CUSTOMERS = "/admin/customers"
GROUPS = "/admin/customer-groups"


@dataclass(frozen=True)
class Case:
    path: str
    query: str
    expected: frozenset[str] | int  # names returned, or the error status

    @property
    def id(self) -> str:
        return f"{'groups' if self.path == GROUPS else 'customers'}?{self.query}"


def _c(query: str, *names: str) -> Case:
    return Case(CUSTOMERS, query, frozenset(names))


def _g(query: str, *names: str) -> Case:
    return Case(GROUPS, query, frozenset(names))


ALL = ("Ada", "Bob")
CASES: list[Case] = [
    # plain values, lists, the comma split of a one-element list
    _c("first_name=Ada", "Ada"),
    _c("first_name[]=ada"),
    _c("first_name=Ada&first_name=Bob", *ALL),
    _c("company_name=Analytical", "Ada"),
    _c("last_name[0]=Doe", "Bob"),
    _c("id[]={ada},{bob}", *ALL),
    _c("id={ada},{bob}"),
    _c("email=bob@x.io", "Bob"),
    _c("created_by=nobody"),
    # null: a single value, never inside a list
    _c("company_name=null", "Bob"),
    _c("company_name[]=null"),
    _c("first_name=null"),
    # operator maps
    _c("id[$eq]={ada}", "Ada"),
    _c("id[$eq][]={ada}", "Ada"),
    _c("id[$ne]={ada}", "Bob"),
    _c("id[$ne]=null", *ALL),
    _c("id[$in][]={ada}", "Ada"),
    _c("id[$nin][]={ada}", "Bob"),
    _c("id[$like]=cus%", *ALL),
    _c("id[$ilike]=CUS%", *ALL),
    _c("id[$re]=^cus", *ALL),
    _c("id[$gt]={ada}", "Bob"),
    _c("created_at[$gte]=2020-01-01", *ALL),
    _c("created_at[$lt]=2020-01-01"),
    _c("created_at=2020-01-01"),
    _c("created_at[]=2020-01-01"),
    _c("created_at[$in][]=2020-01-01"),
    _c("created_at.$gte=2020-01-01", *ALL),
    _c("created_at[$between]=2020-01-01", *ALL),  # an unknown operator is dropped
    # deleted rows are never listed, whatever deleted_at asks
    _c("deleted_at=null", *ALL),
    _c("deleted_at[$eq]=null", *ALL),
    _c("deleted_at[$ne]=null"),
    _c("deleted_at[$gte]=2020-01-01"),
    _c("with_deleted=true", *ALL),
    # booleanString
    _c("has_account=false", *ALL),
    _c("has_account=TRUE"),
    Case(CUSTOMERS, "has_account=yes", 400),
    # groups: ids, or the group's own filters
    _c("groups={vip}", "Ada"),
    _c("groups={vip}&groups={trial}", *ALL),
    _c("groups[id]={vip}", "Ada"),
    _c("groups.id={vip}", "Ada"),
    _c("groups[name]=Trial", "Bob"),
    _c("groups[name][]=VIP&groups[name][]=Trial", *ALL),
    _c("groups[created_at][$gte]=2020-01-01", *ALL),
    _c("groups[deleted_at][$ne]=null"),
    _c("groups[foo]=x", *ALL),
    # $and / $or
    _c("$or[0][first_name]=Ada&$or[1][last_name]=Doe", *ALL),
    _c("$and[0][first_name]=Ada&$and[1][last_name]=Doe"),
    _c("$and[0][first_name]=Ada&$and[1][last_name]=Lovelace", "Ada"),
    _c("$or[0][groups][name]=VIP&$or[1][id]={bob}", *ALL),
    _c("$or[0][foo]=Ada", *ALL),
    _c("$or[0][$or][0][first_name]=Ada", *ALL),
    _c("first_name=Ada&$or[0][last_name]=Doe"),
    # q: every word in some searchable field, case-insensitive, LIKE wildcards
    _c("q=ada lovelace", "Ada"),
    _c("q=ada bob"),
    _c("q=ADA", "Ada"),
    _c("q=analytical", "Ada"),
    _c("q=%", *ALL),
    _c("q=_", *ALL),
    _c("q=", *ALL),
    _c("q=a\\%"),
    # refused
    Case(CUSTOMERS, "foo=1", 400),
    Case(CUSTOMERS, "id[$in]=x", 400),
    Case(CUSTOMERS, "first_name[$eq]=Ada", 400),
    Case(CUSTOMERS, "limit=abc", 400),
    Case(CUSTOMERS, "limit=1&limit=2", 400),
    Case(CUSTOMERS, "fields[]=id,email", 400),
    Case(CUSTOMERS, "q=a&q=b", 400),
    # groups
    _g("q=vi", "VIP"),
    _g("name=VIP", "VIP"),
    _g("name=VIP&name=Trial", "VIP", "Trial"),
    _g("id={vip}", "VIP"),
    _g("customers={ada}", "VIP"),
    _g("customers[id]={bob}", "Trial"),
    _g("customers[email]=ada@x.io", "VIP"),
    _g("customers[email][$ilike]=ADA%", "VIP"),
    _g("customers[first_name]=Bob", "Trial"),
    _g("customers[deleted_at][$ne]=null"),
    _g("customers[foo]=x", "VIP", "Trial"),
    _g("created_by=nobody"),
    _g("created_at[$gte]=2020-01-01", "VIP", "Trial"),
    _g("deleted_at[$ne]=null"),
    _g("$or[0][name]=VIP&$or[1][customers][first_name]=Bob", "VIP", "Trial"),
    Case(GROUPS, "id[$in][]=x", 400),
    Case(GROUPS, "description=x", 400),
]


@dataclass(frozen=True)
class World:
    """Groups VIP (Ada) and Trial (Bob); customers Ada Lovelace (company Analytical) and
    Bob Doe (no company); Del, deleted. Every email is lowercase, as Medusa keeps it."""

    ids: dict[str, str]

    def query(self, case: Case) -> str:
        return case.query.format(**self.ids)


def build_world(
    create_group: Callable[[str], str],
    create_customer: Callable[[dict[str, Any]], str],
    add: Callable[[str, str], None],
    delete_customer: Callable[[str], None],
) -> World:
    vip, trial = create_group("VIP"), create_group("Trial")
    ada = create_customer(
        {
            "email": "ada@x.io",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company_name": "Analytical",
        }
    )
    bob = create_customer({"email": "bob@x.io", "first_name": "Bob", "last_name": "Doe"})
    deleted = create_customer({"email": "del@x.io", "first_name": "Del"})
    add(vip, ada)
    add(trial, bob)
    delete_customer(deleted)
    return World({"vip": vip, "trial": trial, "ada": ada, "bob": bob, "deleted": deleted})


def names(path: str, body: dict[str, Any], among: Iterable[str] | None = None) -> frozenset[str]:
    """The names of the rows listed (only those with an id in ``among``, when given)."""
    rows = body["customer_groups"] if path == GROUPS else body["customers"]
    wanted = set(among) if among is not None else None
    key = "name" if path == GROUPS else "first_name"
    return frozenset(row[key] for row in rows if wanted is None or row["id"] in wanted)
