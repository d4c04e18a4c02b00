"""``gw.analytics``: group statistics and the rollup behind them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from groupwire.analytics.rollup import Rollup, catch_up, rebuild
from groupwire.analytics.stats import GroupStats, group_stats


class Analytics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rollup = Rollup(engine)

    def stats(
        self,
        group_id: str,
        *,
        granularity: str = "day",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> GroupStats:
        """Members now, and joins, leaves and members per bucket of ``[since, until)``."""
        return group_stats(self.engine, group_id, granularity=granularity, since=since, until=until)

    def catch_up(self, group_id: str) -> int:
        """Fold the group's pending events into the rollup now; returns its position."""
        return catch_up(self.engine, group_id)

    def rebuild(self) -> int:
        """Recompute the rollup from the whole event log; returns the events folded."""
        folded = rebuild(self.engine)
        self.rollup.forget()
        return folded
