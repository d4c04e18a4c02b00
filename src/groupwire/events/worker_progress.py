"""What a worker has done, recorded: subscribers registered (their ``bus_progress`` rows) and
their consumer groups created at their saved progress, handled entries acknowledged (XACK) with
the cluster-wide counts, and each slot's progress loaded and saved in ``bus_progress``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select

from groupwire.events.bus_tables import bus_progress
from groupwire.events.redis_bus import register_progress, registered_progress
from groupwire.events.registry import Subscription
from groupwire.events.worker_slots import Slot, WorkerState
from groupwire.store.engine import WRITE, dialect_insert


class WorkerProgress(WorkerState):
    """Registration, acknowledgements and progress of a
    :class:`~groupwire.events.worker.RedisWorker`."""

    def _prepare_groups(self, subscriptions: Iterable[Subscription]) -> None:
        """Register the subscribers that are new (their ``bus_progress`` rows), then create the
        consumer groups (and streams) that are missing, each at its subscriber's saved progress.

        The saved progress is the truth, in PostgreSQL, which a Redis loss does not touch: a
        group created at ``<progress>-0`` is handed every entry after it, whether the relay
        republished it before the group existed or republishes it afterwards. A new
        subscriber's progress starts where its subscription says
        (:meth:`~groupwire.events.registry.Subscription.first_position`): at its ``start``
        (the built-in features: the lowest start of their endpoints, emails and rules, so
        nothing committed after one is skipped, however late the first worker comes), else
        at 0, or with ``from_now`` at the bus cursor of its first registration. A row that
        exists is never reset, so a restart, or Redis coming back, never skips anything.
        See docs/scale-out.md ("Why nothing is lost").
        """
        subscriptions = list({s.name: s for s in subscriptions}.values())
        if not subscriptions:
            return
        saved = registered_progress(self.engine, self.bus.name, [s.name for s in subscriptions])
        streams = range(self.bus.partitions)
        new = [s for s in subscriptions if any((s.name, n) not in saved for n in streams)]
        if new:
            register_progress(self.engine, self.bus, new)
            saved = registered_progress(self.engine, self.bus.name, [s.name for s in subscriptions])
        pipe = self.client.pipeline(transaction=False)
        for sub in subscriptions:
            for n, key in enumerate(self.bus.stream_keys):
                pipe.xgroup_create(key, sub.name, id=f"{saved[(sub.name, n)]}-0", mkstream=True)
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

    def _flush(self) -> None:
        """Acknowledge handled entries and add to the cluster-wide counts."""
        pipe = self.client.pipeline(transaction=False)
        queued = False
        for slot in self.slots:
            if slot.to_ack:
                pipe.xack(slot.key, slot.group, *slot.to_ack)
                slot.to_ack = []
                queued = True
        for key, count in self._stats.items():
            pipe.hincrby(self.bus.stats_key, key, count)
            queued = True
        self._stats = {}
        if queued:
            pipe.execute()

    def _load_progress(self, slot: Slot) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(bus_progress.c.last_sequence).where(
                    bus_progress.c.bus == self.bus.name,
                    bus_progress.c.subscriber == slot.group,
                    bus_progress.c.stream == slot.stream,
                )
            ).scalar_one_or_none()
        slot.saved = int(value or 0)
        return slot.saved

    def _save_progress(self) -> None:
        """Save how far each slot is done. A slot this worker has lost (its lease expired,
        Redis restarted) is saved too: what it handled while it owned it is done, whoever owns
        it now, and the progress only ever rises (the loss's republish starts lower without)."""
        changed = [s for s in self.slots if (s.owned or s.saved >= 0) and s.handled > s.saved]
        if not changed:
            return
        now = datetime.now(UTC)
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            for slot in changed:
                statement = dialect_insert(conn, bus_progress).values(
                    bus=self.bus.name,
                    subscriber=slot.group,
                    stream=slot.stream,
                    last_sequence=slot.handled,
                    updated_at=now,
                )
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["bus", "subscriber", "stream"],
                        set_={"last_sequence": slot.handled, "updated_at": now},
                        where=bus_progress.c.last_sequence < slot.handled,
                    )
                )
        for slot in changed:
            slot.saved = slot.handled
