"""Smart groups of a running Medusa store: where their rules live and what they want.

Beside Medusa the copy's group rows are Medusa's (capture writes them), and so are its
memberships: a rule set with ``gw.groups.update(rule=...)`` would have Groupwire's service write
members into the copy, which must stay equal to Medusa. A Medusa group's rule lives in the
adapter's table ``medusa_smart_group`` instead (set with ``groupwire medusa smart-group set``),
and only the reconciler (:mod:`groupwire.medusa.reconciler`) acts on it, through Medusa's Admin
API; capture brings Medusa's commits back into the copy.

The rule's grammar is the standalone one (:mod:`groupwire.domain.rules`, ``include`` and
``exclude`` inside the rule), compiled by :mod:`groupwire.store.rules` to one SQL condition over
the copy's customers, addresses, captured order facts and memberships:

- desired: include + rule - exclude over the copy's live customers;
- actual: the copy's memberships of the group (Medusa's distinct live pairs, as capture keeps
  them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine

from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.rules import Rule, parse_rule
from groupwire.medusa.tables import medusa_smart_group
from groupwire.service.smart_groups import find_cycle
from groupwire.store import repository as repo
from groupwire.store import tables
from groupwire.store.engine import WRITE
from groupwire.store.rules import matching_ids

S = medusa_smart_group


@dataclass(frozen=True, slots=True)
class MedusaSmartGroup:
    group_id: str
    rule: dict[str, Any]
    rule_version: int
    updated_at: datetime

    @property
    def parsed(self) -> Rule:
        return parse_rule(self.rule)


def list_rules(conn: Connection) -> list[MedusaSmartGroup]:
    rows = conn.execute(select(S).order_by(S.c.group_id)).mappings()
    return [MedusaSmartGroup(**dict(row)) for row in rows]


def get_rule(conn: Connection, group_id: str) -> MedusaSmartGroup | None:
    row = conn.execute(select(S).where(S.c.group_id == group_id)).mappings().first()
    return MedusaSmartGroup(**dict(row)) if row else None


def set_rule(engine: Engine, group_id: str, rule: Any, now: datetime) -> MedusaSmartGroup | None:
    """Set (or with ``None`` drop) the rule of Medusa's group ``group_id``; validated first
    (:class:`InvalidData`: nothing saved). Returns the smart group, or None when dropped."""
    with engine.execution_options(**{WRITE: True}).begin() as conn:
        group = repo.get_group(conn, group_id)
        if group is None or group.deleted_at is not None:
            raise NotFound("customer_group", group_id)
        current = get_rule(conn, group_id)
        if rule is None:
            conn.execute(delete(S).where(S.c.group_id == group_id))
            return None
        parsed = parse_rule(rule)
        _check_groups(conn, group_id, parsed)
        version = (current.rule_version if current else 0) + 1
        values = {"rule": rule, "rule_version": version, "updated_at": now}
        if current is None:
            conn.execute(S.insert().values(group_id=group_id, **values))
        else:
            conn.execute(S.update().where(S.c.group_id == group_id).values(**values))
        return MedusaSmartGroup(group_id, rule, version, now)


def _check_groups(conn: Connection, group_id: str, rule: Rule) -> None:
    named = rule.group_ids
    if group_id in named:
        raise InvalidData("rule.groups.id: a group's rule cannot read its own members")
    unknown = sorted(gid for gid in named if repo.get_group(conn, gid) is None)
    if unknown:
        raise InvalidData(f"rule.groups.id: unknown customer groups: {', '.join(unknown)}")
    reads = {g.group_id: g.parsed.group_ids for g in list_rules(conn)}
    reads[group_id] = named
    cycle = find_cycle(reads, group_id)
    if cycle:
        raise InvalidData(f"rule.groups.id: the rules would read each other: {' -> '.join(cycle)}")


def desired(
    conn: Connection, rule: Rule, now: datetime, among: Sequence[str] | None = None
) -> set[str]:
    """Who should be a member: include + rule - exclude over the copy's live customers."""
    if among is None:
        return matching_ids(conn, rule, now)
    found: set[str] = set()
    for part in repo.chunks(list(among)):
        found |= matching_ids(conn, rule, now, part)
    return found


def actual(conn: Connection, group_id: str, among: Sequence[str] | None = None) -> set[str]:
    """Who is a member in the copy (Medusa's live pairs, as captured)."""
    M = tables.membership
    query = select(M.c.customer_id).where(M.c.customer_group_id == group_id)
    if among is None:
        return set(conn.execute(query).scalars())
    found: set[str] = set()
    for part in repo.chunks(list(among)):
        found |= set(conn.execute(query.where(M.c.customer_id.in_(list(part)))).scalars())
    return found
