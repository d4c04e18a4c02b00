"""Every table of every feature, imported so that Alembic and the tests see the whole schema.

Feature packages define their tables on ``groupwire.store.tables.metadata`` in a module of
their own; each such module is imported here (one line per feature).
"""

from __future__ import annotations

import groupwire.analytics.tables
import groupwire.auth.tables
import groupwire.events.bus_tables
import groupwire.mail.tables
import groupwire.notify.tables
import groupwire.store.address_tables
import groupwire.store.order_tables
import groupwire.ui.tables
import groupwire.webhooks.tables  # noqa: F401  (webhook_endpoint, _message, _attempt)
from groupwire.store import tables
from groupwire.store.tables import metadata

__all__ = ["metadata", "tables"]
