"""Tables of the Redis Streams bus: the publish cursor and each subscriber's handled progress.

``bus_cursor``: one row per bus (its Redis key prefix) holding the last event sequence the
relay has published. Relays take the row with ``FOR UPDATE SKIP LOCKED`` and keep it locked
while they publish, so two relays never publish the same events.

``bus_progress``: per bus, subscriber and stream, the sequence up to which the subscriber has
finished every event of that stream. Saved by workers after the handlers ran; the relay
republishes from its minimum when Redis has lost data, and trims streams below it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from groupwire.store.tables import UTCDateTime, metadata

bus_cursor = Table(
    "bus_cursor",
    metadata,
    Column("bus", String(255), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

bus_progress = Table(
    "bus_progress",
    metadata,
    Column("bus", String(255), primary_key=True),
    Column("subscriber", String(255), primary_key=True),
    Column("stream", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
