"""Reading and writing rows. Plain functions over a connection; no business rules here.

Row locks (``FOR UPDATE`` / ``FOR KEY SHARE``) matter on PostgreSQL and are ignored by SQLite,
whose write transactions are serialised by ``BEGIN IMMEDIATE`` anyway. Lock order, everywhere:
customers first (by id), then groups (by id), then the outbox counter at commit.

Callers use the package (``repo.get_group(conn, ...)``); the functions live in its parts:

* :mod:`.groups` and :mod:`.customers`: one kind of row each (read, lock, uniqueness, insert,
  list);
* :mod:`.memberships`: what a change of a group's members reads and writes;
* :mod:`.related`: a group's members and a customer's groups, for ``fields=*customers`` /
  ``fields=*groups``;
* :mod:`.outbox`: the outbox counter;
* :mod:`.rows` (rows into entities, chunks of ids), :mod:`.statements` (the statements built
  once) and :mod:`.listing` (pages of a list): what the others share.
"""

from __future__ import annotations

from groupwire.store.repository.customers import (
    email_taken,
    get_customer,
    get_customers,
    insert_customer,
    list_customers,
    live_customer_ids,
    share_lock_customers,
)
from groupwire.store.repository.groups import (
    get_group,
    group_name_taken,
    insert_group,
    key_share_group,
    list_groups,
    lock_groups,
)
from groupwire.store.repository.memberships import (
    MembershipScope,
    add_live_memberships,
    all_memberships,
    delete_memberships,
    group_ids_of,
    insert_memberships,
    insert_new_memberships,
    inserts_new_memberships,
    member_ids,
    members_among,
    membership_scope,
)
from groupwire.store.repository.outbox import last_sequence
from groupwire.store.repository.related import (
    groups_json_of_customers,
    groups_of_customers,
    members_json_of_groups,
    members_of_groups,
)
from groupwire.store.repository.rows import CHUNK, chunks, like_pattern, to_customer, to_group
from groupwire.store.repository.statements import id_chunks, update_row

__all__ = [
    "CHUNK",
    "MembershipScope",
    "add_live_memberships",
    "all_memberships",
    "chunks",
    "delete_memberships",
    "email_taken",
    "get_customer",
    "get_customers",
    "get_group",
    "group_ids_of",
    "group_name_taken",
    "groups_json_of_customers",
    "groups_of_customers",
    "id_chunks",
    "insert_customer",
    "insert_group",
    "insert_memberships",
    "insert_new_memberships",
    "inserts_new_memberships",
    "key_share_group",
    "last_sequence",
    "like_pattern",
    "list_customers",
    "list_groups",
    "live_customer_ids",
    "lock_groups",
    "member_ids",
    "members_among",
    "members_json_of_groups",
    "members_of_groups",
    "membership_scope",
    "share_lock_customers",
    "to_customer",
    "to_group",
    "update_row",
]
