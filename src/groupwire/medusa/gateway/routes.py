"""The route table of the gateway: the five customer-group writes it reads for Groupwire's
before-hooks, and the hooks each can run (a route none of whose hooks has an implementation is
forwarded untouched).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.types import Scope

# Express routes case-insensitively and ignores one trailing slash; so do these (matched on
# the raw path, as Express matches it before decoding its parameters).
_SEGMENT = r"([^/?#]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/admin/customer-groups/?$", re.I), "create_group"),
    ("POST", re.compile(rf"^/admin/customer-groups/{_SEGMENT}/?$", re.I), "update_group"),
    ("DELETE", re.compile(rf"^/admin/customer-groups/{_SEGMENT}/?$", re.I), "delete_group"),
    (
        "POST",
        re.compile(rf"^/admin/customer-groups/{_SEGMENT}/customers/?$", re.I),
        "group_customers",
    ),
    (
        "POST",
        re.compile(rf"^/admin/customers/{_SEGMENT}/customer-groups/?$", re.I),
        "customer_groups",
    ),
)
HOOKS_OF_ROUTE: dict[str, tuple[str, ...]] = {
    "create_group": ("before_create_customer_group",),
    "update_group": ("before_update_customer_group",),
    "delete_group": ("before_delete_customer_group", "before_remove_customer_from_group"),
    "group_customers": ("before_add_customer_to_group", "before_remove_customer_from_group"),
    "customer_groups": ("before_add_customer_to_group", "before_remove_customer_from_group"),
}


def _route(scope: Scope) -> tuple[str, str] | None:
    method = scope["method"]
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    for route_method, pattern, name in ROUTES:
        if method == route_method:
            match = pattern.match(path)
            if match:
                return name, unquote(match.group(1)) if match.groups() else ""
    return None
