"""The membership rollup: joins and leaves per group per hour, and each group's position.

``group_stats`` holds, per group, the current member count and the last event sequence folded
into the rollup; ``group_stats_hourly`` the joins and leaves of each hour (UTC) that had any.
The member count at any instant is the sum of (joins - leaves) of the hours before it, so no
snapshot can drift from the counts it summarises. Both tables are derived from the event log
and can be rebuilt from it at any time (:func:`groupwire.analytics.rollup.rebuild`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, Table

from groupwire.store.tables import Id, UTCDateTime, metadata

group_stats = Table(
    "group_stats",
    metadata,
    Column("group_id", Id, primary_key=True),
    Column("member_count", Integer, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

group_stats_hourly = Table(
    "group_stats_hourly",
    metadata,
    Column("group_id", Id, primary_key=True),
    Column("bucket", UTCDateTime, primary_key=True),
    Column("joins", Integer, nullable=False),
    Column("leaves", Integer, nullable=False),
)
