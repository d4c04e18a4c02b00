"""``Groupwire``: the library's front door, wiring store, service, hooks and event delivery.

gw = Groupwire.open("sqlite:///shop.db")
vip = gw.groups.create(name="VIP")
gw.groups.add_customers(vip.id, [customer.id])

@gw.subscriber("customer_group.customer_added")
def welcome(event): ...

gw.start()        # deliver events in background threads
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine

from groupwire.addresses import Addresses
from groupwire.domain.changes import Context
from groupwire.domain.errors import NotFound
from groupwire.domain.models import Customer, CustomerGroup, Event, Page
from groupwire.domain.rules import Reason
from groupwire.events import delivery
from groupwire.events.delivery import DeadLetter, RetryPolicy
from groupwire.events.idempotency import Idempotency
from groupwire.events.redis_bus import relay_for
from groupwire.events.registry import Handler, Start, SubscriberRegistry, Subscription
from groupwire.events.relay import OutboxRelay
from groupwire.events.worker import RedisWorker
from groupwire.hooks.plugins import make_plugin_manager, register
from groupwire.orders import Orders
from groupwire.service import UNSET, MembershipChange, Service
from groupwire.service.scheduler import FlipScheduler
from groupwire.settings import Settings
from groupwire.store import event_log, migrate
from groupwire.store import repository as repo
from groupwire.store.engine import create_store_engine, read_retrying

# Plugins every instance registers, before configured and installed ones.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "groupwire.webhooks.plugin",
    "groupwire.mail.plugin",
    "groupwire.notify.plugin",
    "groupwire.analytics.plugin",
)


class Groupwire:
    """One Groupwire instance: a database, its plugins, its subscribers and their relay."""

    def __init__(self, engine: Engine, settings: Settings, plugins: Sequence[object] = ()) -> None:
        self.settings = settings
        self.engine = engine
        self.plugins = make_plugin_manager(
            [*BUILTIN_PLUGINS, *settings.plugins, *plugins],
            load_entry_points=settings.load_entry_points,
        )
        self.service = Service(
            engine,
            self.plugins,
            source=settings.event_source,
            key_ttl=settings.idempotency_key_ttl,
        )
        self.subscribers = SubscriberRegistry()
        self.retry_policy = RetryPolicy(
            max_attempts=settings.delivery_max_attempts,
            base_delay=settings.delivery_retry_base,
            max_delay=settings.delivery_retry_max,
        )
        self.relay = OutboxRelay(
            engine,
            self.subscribers,
            self.retry_policy,
            poll_interval=settings.relay_poll_interval,
        )
        self.service.commit_listeners.append(self.relay.wake)
        # None unless bus_url is redis://...
        self.bus_relay = relay_for(engine, settings, self.subscribers)
        if self.bus_relay is not None:
            self.service.commit_listeners.append(self.bus_relay.wake)
        # Smart groups' time conditions, applied at their moment (started by start()).
        self.scheduler = FlipScheduler(self.service, max_sleep=settings.smart_schedule_max_sleep)
        self.idempotency = Idempotency(engine)
        self.groups = Groups(self)
        self.customers = Customers(self)
        self.events = Events(self)
        self.orders = Orders(self)
        self.dead_letters = DeadLetters(self)
        self.workers: list[Any] = []  # background services plugins add: .start() / .stop()
        # What plugins add to ``/health`` (name -> a check answering "ok" or "error: ...")
        # and to ``/metrics`` (Prometheus collectors, read at scrape time).
        self.health_checks: dict[str, Callable[[], str]] = {}
        self.metrics_collectors: list[Any] = []
        self.plugins.hook.register_subscribers(gw=self)

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        *,
        plugins: Sequence[object] = (),
        settings: Settings | None = None,
        **overrides: Any,
    ) -> Groupwire:
        """Open (and migrate) a store. Unset options come from ``GROUPWIRE_*`` variables."""
        if database_url is not None:
            overrides["database_url"] = database_url
        if overrides or settings is None:
            # Validated like environment values (``Settings`` reads the environment for the rest).
            base = settings.model_dump(exclude_unset=True) if settings else {}
            settings = Settings(**{**base, **overrides})
        engine = create_store_engine(settings.database_url)
        if settings.auto_migrate:
            migrate.upgrade(engine)
        return cls(engine, settings, plugins)

    # --- plugins and subscribers ---------------------------------------------------------

    def register(self, plugin: object | str) -> None:
        """Register a hook plugin (module, object, or dotted module path)."""
        register(self.plugins, plugin)

    def subscriber(
        self,
        *patterns: str,
        name: str | None = None,
        max_attempts: int | None = None,
        from_now: bool = False,
        batch: bool = False,
        linger: float = 0.0,
        start: Start | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering an event handler for types or patterns (``customer_group.*``).

        The name (default: the handler's qualified name) keys the subscriber's progress, so a
        restart resumes where it stopped; ``from_now`` makes a brand-new subscriber skip history
        (the history before its first registration); ``start`` (a function of a connection,
        e.g. :func:`groupwire.events.checkpoints.since_lowest`) says instead where a brand-new
        one starts, whenever that registration comes; ``batch`` hands the handler a list of
        events (one transaction for many); ``linger`` (seconds) makes the in-process relay wait
        that long once a commit wakes the subscriber, so that the commits of that time come in
        one batch.
        """
        return self.subscribers.subscriber(
            *patterns,
            name=name,
            max_attempts=max_attempts,
            from_now=from_now,
            batch=batch,
            linger=linger,
            start=start,
        )

    def subscribe(
        self,
        patterns: str | Sequence[str],
        handler: Handler,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        from_now: bool = False,
        batch: bool = False,
        linger: float = 0.0,
        start: Start | None = None,
    ) -> Subscription:
        """Register ``handler`` for types or patterns; see :meth:`subscriber`. ``linger``
        (seconds): the in-process relay waits that long once a commit wakes the subscriber,
        so that the commits of that time come to a batch handler in one call."""
        return self.subscribers.add(
            patterns,
            handler,
            name=name,
            max_attempts=max_attempts,
            from_now=from_now,
            batch=batch,
            linger=linger,
            start=start,
        )

    @property
    def hook_failures(self) -> list[Any]:
        return list(self.service.hook_failures)

    # --- delivery ------------------------------------------------------------------------

    def start(self) -> Groupwire:
        """Deliver events to subscribers in background threads until :meth:`close`; with a
        Redis ``bus_url``, publish them to Redis Streams instead (workers deliver them).
        Smart groups' time conditions flip at their moment in another thread (the
        scheduler: once per flip however many processes run it)."""
        (self.bus_relay or self.relay).start()
        self.scheduler.start()
        for worker in self.workers:
            worker.start()
        return self

    def worker(self, **options: Any) -> RedisWorker:
        """A Redis Streams worker running this instance's subscribers (``.run()``/``.start()``)
        on the bus its settings name; ``options`` go to :class:`RedisWorker`."""
        return RedisWorker.from_settings(
            self.engine, self.settings, self.subscribers, self.retry_policy, **options
        )

    def deliver_pending(self) -> int:
        """Deliver every pending event now, in this thread (scripts, tests). With a Redis
        bus, workers deliver: this publishes everything committed so far instead."""
        if self.bus_relay is not None:
            return self.bus_relay.publish_pending()
        return self.relay.deliver_pending()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every subscriber has handled every event committed so far. With a
        Redis bus, the workers handle them elsewhere: this waits until all are published."""
        if self.bus_relay is not None:
            try:
                self.bus_relay.publish_pending(timeout)
            except TimeoutError:
                return False
            return True
        return self.relay.drain(timeout)

    def close(self) -> None:
        if self.bus_relay is not None:
            self.bus_relay.stop()
        self.relay.stop()
        self.scheduler.stop()
        for worker in self.workers:
            worker.stop()
        self.engine.dispose()

    def __enter__(self) -> Groupwire:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Groups:
    """``gw.groups``: customer groups and their members."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw
        self._service = gw.service

    def create(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        rule: dict[str, Any] | None = None,
        stream: bool = False,
        context: Context | None = None,
    ) -> CustomerGroup:
        """Create a group; with a ``rule`` a smart group (``docs/smart-groups.md``;
        ``stream``: the rule is applied after the commit by a sweep, see :meth:`update`)."""
        return self._service.create_group(
            name,
            description=description,
            metadata=metadata,
            rule=rule,
            stream_rule=stream,
            context=context,
        )

    def get(self, group_id: str) -> CustomerGroup:
        group = read_retrying(self._gw.engine, lambda conn: repo.get_group(conn, group_id))
        if group is None:
            raise NotFound("customer_group", group_id)
        return group

    def update(
        self,
        group_id: str,
        *,
        name: str = UNSET,
        description: str | None = UNSET,
        metadata: dict[str, Any] | None = UNSET,
        rule: dict[str, Any] | None = UNSET,
        expected_version: int | None = None,
        stream: bool = False,
        context: Context | None = None,
    ) -> CustomerGroup:
        """``rule``: a new rule (applied to every customer at once) or None (manual again).
        ``stream``: the new rule is saved with its version, and applied after the commit by
        a sweep, a committed batch of customers at a time with ``trigger: "rule_changed"``
        (by the scheduler of a process delivering events, or :meth:`sweep`); resumed after
        a crash from its last committed batch."""
        return self._service.update_group(
            group_id,
            name=name,
            description=description,
            metadata=metadata,
            rule=rule,
            expected_version=expected_version,
            stream_rule=stream,
            context=context,
        )

    def sweep(
        self, group_id: str, *, limit: int = 1000, context: Context | None = None
    ) -> int | None:
        """Decide the next ``limit`` customers of the group's sweep (a streamed rule, or a
        rule reading time just applied) in one transaction: how many; 0 while another
        process holds it; None when none is left."""
        return self._service.sweep_group(group_id, limit, context=context)

    def sweep_progress(self, group_id: str) -> tuple[int, int] | None:
        """``(customers decided, live customers)`` of the group's sweep, None without one."""
        return self._service.sweep_progress(group_id)

    def preview_rule(self, group_id: str, rule: dict[str, Any] | None, *, limit: int = 20) -> Any:
        """Who would join and leave the group under ``rule`` (a ``RulePreview``); nothing
        is written."""
        return self._service.preview_rule(group_id, rule, limit=limit)

    def explain_members(
        self, group_id: str, customer_ids: Sequence[str]
    ) -> dict[str, builtins.list[Reason]]:
        """Why each of these members is in the smart group (``Reason``s: the ``include``
        list, or the rule's top-level clauses that hold for the customer; none when the rule
        would not keep it now)."""
        return self._service.explain_members(group_id, customer_ids)

    def next_flips(self, group_id: str, *, limit: int = 20) -> builtins.list[tuple[str, datetime]]:
        """The smart group's next scheduled flips, earliest first: ``(customer_id, when)``
        (when the scheduler decides that customer again, its time condition changing)."""
        return self._service.next_flips(group_id, limit=limit)

    def delete(
        self, group_id: str, *, expected_version: int | None = None, context: Context | None = None
    ) -> CustomerGroup:
        return self._service.delete_group(
            group_id, expected_version=expected_version, context=context
        )

    def list(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page:
        items, count = read_retrying(
            self._gw.engine,
            lambda conn: repo.list_groups(conn, limit=limit, offset=offset, **filters),
        )
        return Page(items=items, count=count, offset=offset, limit=limit)

    def add_customers(
        self, group_id: str, customer_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        return self._service.add_customers_to_group(group_id, customer_ids, context=context)

    def remove_customers(
        self, group_id: str, customer_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        return self._service.remove_customers_from_group(group_id, customer_ids, context=context)

    def update_customers(
        self,
        group_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        context: Context | None = None,
    ) -> MembershipChange:
        return self._service.update_group_customers(
            group_id, add=add, remove=remove, context=context
        )

    def members(self, group_id: str) -> builtins.list[Customer]:
        self.get(group_id)
        found = read_retrying(
            self._gw.engine, lambda conn: repo.members_of_groups(conn, [group_id])
        )
        return found[group_id]


class Customers:
    """``gw.customers``: customers and the groups they belong to; ``.addresses`` their
    addresses."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw
        self._service = gw.service
        self.addresses = Addresses(gw)

    def create(
        self, email: str | None = None, *, context: Context | None = None, **fields: Any
    ) -> Customer:
        """Create a customer; ``email`` is optional, as in Medusa (see the service)."""
        return self._service.create_customer(email, context=context, **fields)

    def get(self, customer_id: str) -> Customer:
        customer = read_retrying(self._gw.engine, lambda conn: repo.get_customer(conn, customer_id))
        if customer is None:
            raise NotFound("customer", customer_id)
        return customer

    def update(
        self,
        customer_id: str,
        *,
        expected_version: int | None = None,
        context: Context | None = None,
        **fields: Any,
    ) -> Customer:
        return self._service.update_customer(
            customer_id, expected_version=expected_version, context=context, **fields
        )

    def delete(
        self,
        customer_id: str,
        *,
        expected_version: int | None = None,
        context: Context | None = None,
    ) -> Customer:
        return self._service.delete_customer(
            customer_id, expected_version=expected_version, context=context
        )

    def list(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page:
        items, count = read_retrying(
            self._gw.engine,
            lambda conn: repo.list_customers(conn, limit=limit, offset=offset, **filters),
        )
        return Page(items=items, count=count, offset=offset, limit=limit)

    def groups(self, customer_id: str) -> builtins.list[CustomerGroup]:
        self.get(customer_id)
        found = read_retrying(
            self._gw.engine, lambda conn: repo.groups_of_customers(conn, [customer_id])
        )
        return found[customer_id]

    def update_groups(
        self,
        customer_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        context: Context | None = None,
    ) -> MembershipChange:
        return self._service.update_customer_groups(
            customer_id, add=add, remove=remove, context=context
        )

    def set_groups(
        self, customer_id: str, group_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        return self._service.set_customer_groups(customer_id, group_ids, context=context)


class Events:
    """``gw.events``: the event log, which is also the audit trail."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw

    def list(
        self,
        *,
        type: str | Sequence[str] | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int | None = 100,
        descending: bool = False,
    ) -> builtins.list[Event]:
        """Events in sequence order. ``type`` takes exact types or ``prefix.*`` patterns;
        ``after`` is a sequence cursor (exclusive); ``since``/``until`` bound the time."""
        types = [type] if isinstance(type, str) else list(type) if type else None
        return read_retrying(
            self._gw.engine,
            lambda conn: event_log.list_events(
                conn,
                types=types,
                subject=subject,
                since=since,
                until=until,
                after=after,
                limit=limit,
                descending=descending,
            ),
        )

    def last_sequence(self) -> int:
        return read_retrying(self._gw.engine, repo.last_sequence)


class DeadLetters:
    """``gw.dead_letters``: events a subscriber gave up on, and their replay."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw

    def list(
        self, *, subscriber: str | None = None, include_replayed: bool = False
    ) -> builtins.list[DeadLetter]:
        return delivery.list_dead_letters(
            self._gw.engine, subscriber=subscriber, include_replayed=include_replayed
        )

    def replay(self, *, subscriber: str | None = None) -> tuple[int, int]:
        """Deliver dead letters again; returns (delivered, still failing)."""
        ok = failed = 0
        for letter in self.list(subscriber=subscriber):
            subscription = self._gw.subscribers.get(letter.subscriber)
            if delivery.replay_dead_letter(
                self._gw.engine, letter, subscription, self._gw.retry_policy
            ):
                ok += 1
            else:
                failed += 1
        return ok, failed
