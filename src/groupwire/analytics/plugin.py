"""The built-in analytics plugin: ``gw.analytics`` and the ``groupwire.analytics`` subscriber
that keeps the membership rollup (joins and leaves per group per hour) up to date."""

from __future__ import annotations

from typing import Any

from groupwire.analytics.rollup import MEMBERSHIP_TYPES, SUBSCRIBER
from groupwire.analytics.service import Analytics
from groupwire.hooks.specs import hookimpl


@hookimpl
def register_subscribers(gw: Any) -> None:
    gw.analytics = Analytics(gw.engine)
    # From the start of the log: the first event of a group folds that group's whole history.
    gw.subscribe(
        MEMBERSHIP_TYPES,
        gw.analytics.rollup.handle_events,
        name=SUBSCRIBER,
        batch=True,
        linger=gw.settings.builtin_linger_seconds,
    )
