"""The built-in webhooks plugin, registered by every :class:`groupwire.Groupwire`.

It gives the instance ``gw.webhooks`` (:class:`groupwire.webhooks.Webhooks`), subscribes
``groupwire.webhooks`` to every event so that matching events become webhook messages, and
adds the dispatcher to the workers that ``gw.start()`` starts and ``gw.close()`` stops.
"""

from __future__ import annotations

from typing import Any

from groupwire.events.checkpoints import since_lowest
from groupwire.hooks.specs import hookimpl
from groupwire.webhooks.service import Webhooks
from groupwire.webhooks.tables import webhook_endpoint as endpoint_table

SUBSCRIBER = "groupwire.webhooks"


@hookimpl
def register_subscribers(gw: Any) -> None:
    webhooks = Webhooks.for_groupwire(gw)
    gw.webhooks = webhooks
    # Endpoints receive the events committed after their creation (their start_sequence):
    # the subscriber's first registration, whenever it comes, starts at the lowest such
    # start, or at the end of the log while there is no endpoint, so no older history is
    # read and nothing an endpoint is owed is skipped.
    gw.subscribe(
        "*",
        webhooks.handle_events,
        name=SUBSCRIBER,
        start=since_lowest(endpoint_table.c.start_sequence),
        batch=True,
    )
    gw.workers.append(webhooks)
