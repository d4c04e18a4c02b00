"""What every operation shares: the transaction it runs in and what follows its commit.

:meth:`ServiceCore._transaction` runs an operation's work in one unit of work and commits it,
retrying when PostgreSQL reports a deadlock or a serialization failure; after the commit it
tells the commit listeners (the relay) and, after a keyed change, prunes expired idempotency
keys now and then. :meth:`ServiceCore._after` runs the implementations of an after-hook one
by one, so that a failing one stops no other.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pluggy
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from groupwire.domain.changes import Context
from groupwire.domain.errors import Duplicate, Unavailable
from groupwire.domain.models import Event
from groupwire.store import idempotency_keys
from groupwire.store.engine import WRITE, connection_lost
from groupwire.store.unit_of_work import RulesChanged, UnitOfWork, wait_for_rule_changes

log = logging.getLogger("groupwire.service")

T = TypeVar("T")

RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
NOTHING_WRITTEN_MESSAGE = (
    "The database connection was lost before the change was committed: nothing was written."
    " Retry later."
)
MAX_TRANSACTION_ATTEMPTS = 5
MAX_RULE_RACES = 50
"""Times a change runs again because a smart group's rule changed under it."""
PRUNE_INTERVAL = 600.0
"""Seconds between two deletions of expired idempotency keys by one process."""


@dataclass(frozen=True, slots=True)
class HookFailure:
    """An after-hook that raised; the change it followed stays committed."""

    hook: str
    plugin: str
    error: str
    time: datetime


CommitListener = Callable[[Sequence[Event]], None]


class ServiceCore:
    """The state every operation shares (engine, plugins, commit listeners, after-hook
    failures) and the steps around its work; :class:`groupwire.service.Service` adds
    the operations."""

    def __init__(
        self,
        engine: Engine,
        plugins: pluggy.PluginManager,
        *,
        source: str = "groupwire",
        key_ttl: float = idempotency_keys.DEFAULT_TTL,
    ) -> None:
        """``key_ttl``: seconds an idempotency key stays in force after its first use."""
        self.engine = engine
        self.plugins = plugins
        self.source = source
        self.key_ttl = key_ttl
        self._next_prune = 0.0
        self.commit_listeners: list[CommitListener] = []
        # Called after a commit that wrote a smart group flip, with the earliest one (the
        # scheduler of this process wakes up when it is earlier than its own next one).
        self.flip_listeners: list[Callable[[datetime], None]] = []
        self.hook_failures: deque[HookFailure] = deque(maxlen=1000)

    def _transaction(
        self, context: Context, work: Callable[[UnitOfWork], T], *, durable: bool = False
    ) -> T:
        """Run ``work`` in a unit of work and commit; retry when PostgreSQL asks us to.

        ``work`` returns the entity the change is about, alone or first in a tuple: that is
        the subject the unit of work hands to the context's ``answer`` (the group of a group
        change, the customer of a customer or address change).

        A lost connection is not retried: before the COMMIT it is :class:`Unavailable`
        (nothing written), during it :class:`OutcomeUnknown` (raised by the unit of work).
        """
        rule_races = 0
        attempt = 0
        while attempt < MAX_TRANSACTION_ATTEMPTS:
            attempt += 1
            try:
                with UnitOfWork(
                    self.engine,
                    source=self.source,
                    context=context,
                    key_ttl=self.key_ttl,
                    durable=durable,
                ) as uow:
                    result = work(uow)
                    subject = result[0] if isinstance(result, tuple) else result
                    committed = uow.commit(subject)
                break
            except RulesChanged:
                # a rule changed while this evaluated the old one: wait until no rule change
                # is in flight, then run again (not counted as an attempt, up to a bound)
                rule_races += 1
                if rule_races == MAX_RULE_RACES:
                    raise
                log.info("retrying a transaction: smart groups' rules changed (%d)", rule_races)
                wait_for_rule_changes(self.engine)
                attempt -= 1
            except (DBAPIError, PoolTimeout) as error:
                if connection_lost(error):
                    raise Unavailable(NOTHING_WRITTEN_MESSAGE) from error
                sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
                if sqlstate not in RETRYABLE_SQLSTATES or attempt == MAX_TRANSACTION_ATTEMPTS:
                    raise
                log.info("retrying a transaction after %s (attempt %d)", sqlstate, attempt)
        if context.idempotency_key is not None:
            self._prune_keys()
        self._tell_listeners(committed)
        if uow.earliest_flip is not None:
            for flip_listener in list(self.flip_listeners):
                flip_listener(uow.earliest_flip)
        for later in uow.after_commit:
            later()
        return result

    def _tell_listeners(self, committed: Sequence[Event]) -> None:
        if committed:
            for listener in list(self.commit_listeners):
                try:
                    listener(committed)
                except Exception:
                    log.exception("commit listener %r failed", listener)

    def _keyed(self, context: Context | None, operation: str, **arguments: Any) -> Context:
        """The change's context; with an idempotency key and no fingerprint, one is derived
        from the operation and its arguments (the same call again is "the same request")."""
        context = context or Context()
        if context.idempotency_key is None or context.request_fingerprint is not None:
            return context
        if context.additional_data is not None:
            arguments = {**arguments, "additional_data": dict(context.additional_data)}
        fingerprint = idempotency_keys.arguments_fingerprint(operation, arguments)
        return replace(context, request_fingerprint=fingerprint)

    def _prune_keys(self) -> None:
        """Delete expired idempotency keys, at most every ``PRUNE_INTERVAL`` seconds (or
        ``key_ttl``, when shorter) per process, after a keyed change."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + min(PRUNE_INTERVAL, self.key_ttl)
        try:
            with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
                idempotency_keys.prune(conn, datetime.now(UTC))
        except DBAPIError:
            log.exception("pruning expired idempotency keys failed (tried again later)")

    def _after(self, hook_name: str, **kwargs: Any) -> None:
        """Call each implementation of an after-hook on its own: one failing stops no other."""
        caller = getattr(self.plugins.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as error:
                log.exception("after-hook %s of plugin %s failed", hook_name, impl.plugin_name)
                self.hook_failures.append(
                    HookFailure(hook_name, impl.plugin_name, repr(error), datetime.now(UTC))
                )


class _unique_violation:
    """Turn a unique-index violation (a race the pre-check lost) into ``Duplicate``."""

    def __init__(self, error: Duplicate) -> None:
        self.error = error

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, IntegrityError):
            raise self.error from exc
