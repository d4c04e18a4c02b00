"""The scheduler of smart groups' time conditions: members move at the moment a rule's
answer changes by itself (``created_at`` 14 days ago, ``metadata.trial_ends_at`` passed, an
order leaving a ``"last": "90d"`` window), with the trigger ``schedule``.

Each evaluation writes, for each (smart group, customer) whose rule reads time, the next
moment the answer may change (:func:`groupwire.domain.rules.next_flip`) into
``smart_group_flip``, in its own transaction. This loop sleeps until the earliest one, woken
earlier when a commit of this process writes an earlier flip, and never longer than
``max_sleep`` (flips written by other processes); then it applies the due flips through the
service (:meth:`SmartGroupSteps.apply_due_flips`: the same events, before-hooks and vetoes
as any change). On PostgreSQL a due flip is claimed ``FOR UPDATE SKIP LOCKED`` by the
transaction that applies it, so several processes apply each flip once, and a killed
process's claim is released by its rollback.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from groupwire.service.smart_groups import SmartGroupSteps

log = logging.getLogger("groupwire.scheduler")

BATCH = 100
"""Pairs decided per transaction."""
BUSY_PAUSE = 0.05
"""Seconds to wait when due flips are all held by other processes' transactions."""
ERROR_PAUSE = 1.0
POSTPONE = 30.0
"""Seconds a flip whose application fails on its own (a before-hook raising something other
than a veto, say) is put off, so that it does not hold up the flips after it."""


class FlipScheduler:
    """``start()`` / ``stop()``: apply smart group flips as they fall due, in a thread."""

    def __init__(self, service: SmartGroupSteps, *, max_sleep: float = 1.0) -> None:
        self.service = service
        self.max_sleep = max_sleep
        self.applied = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._until: datetime | None = None  # the moment the loop sleeps until

    def wake(self, at: datetime | None = None) -> None:
        """A flip at ``at`` was committed: wake up if it is earlier than the next one known."""
        until = self._until
        if at is None or until is None or at < until:
            self._wake.set()

    def start(self) -> FlipScheduler:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self.service.flip_listeners.append(self.wake)
            self._thread = threading.Thread(
                target=self.run, name="groupwire-flip-scheduler", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.wake in self.service.flip_listeners:
            self.service.flip_listeners.remove(self.wake)

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                delay = self.step()
            except Exception:
                log.exception("applying smart group flips failed (tried again shortly)")
                delay = ERROR_PAUSE
            if delay > 0:
                self._wake.wait(delay)
            self._until = None

    def step(self) -> float:
        """Apply what is due; the seconds to sleep before looking again. Looking is a read:
        a write transaction is opened only when something is due."""
        earliest = self.service.next_flip_at()
        if earliest is None:
            self._until = None
            return self.max_sleep
        wait = (earliest - datetime.now(UTC)).total_seconds()
        if wait > 0:
            self._until = earliest
            return min(wait, self.max_sleep)
        try:
            claimed = self.service.apply_due_flips(BATCH)
        except Exception:
            log.exception("applying due smart group flips failed: trying the first alone")
            try:
                claimed = self.service.apply_due_flips(1)
            except Exception:
                what = self.service.postpone_due_flip(POSTPONE)
                log.exception("the %s failed again: put off by %.0f s", what, POSTPONE)
                return 0.0
        self.applied += claimed
        # none claimed: the due ones are held by another process's transaction
        return 0.0 if claimed else BUSY_PAUSE
