"""Group analytics from the event log: members over time, joins and leaves per hour or day.

``gw.analytics.stats(group_id, granularity="day", since=..., until=...)``; the rollup that
makes it fast is kept by the built-in :mod:`groupwire.analytics.plugin`. docs/use-cases.md.
"""

from __future__ import annotations

from groupwire.analytics.service import Analytics
from groupwire.analytics.stats import GroupStats, StatsPoint, group_stats


def analytics_of(gw: object) -> Analytics:
    """The analytics service of a Groupwire instance (``gw.analytics``), typed."""
    analytics = getattr(gw, "analytics", None)
    if not isinstance(analytics, Analytics):
        raise RuntimeError("this Groupwire instance has no analytics plugin registered")
    return analytics


__all__ = ["Analytics", "GroupStats", "StatsPoint", "analytics_of", "group_stats"]
