"""The built-in webhooks plugin, registered by every :class:`groupwire.Groupwire`.

It gives the instance ``gw.webhooks`` (:class:`groupwire.webhooks.Webhooks`), subscribes
``groupwire.webhooks`` to every event so that matching events become webhook messages, and
adds the dispatcher to the workers that ``gw.start()`` starts and ``gw.close()`` stops.
"""

from __future__ import annotations

from typing import Any

from groupwire.hooks.specs import hookimpl
from groupwire.webhooks.service import Webhooks

SUBSCRIBER = "groupwire.webhooks"


@hookimpl
def register_subscribers(gw: Any) -> None:
    webhooks = Webhooks.for_groupwire(gw)
    gw.webhooks = webhooks
    # A new store's subscriber starts at the end of the log: endpoints only ever receive
    # events committed after they were created, so nothing older needs a look.
    gw.subscribe("*", webhooks.handle_events, name=SUBSCRIBER, from_now=True, batch=True)
    gw.workers.append(webhooks)
