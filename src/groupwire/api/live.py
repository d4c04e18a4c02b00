"""Live tailing of the event log as Server-Sent Events.

A stream wakes as soon as this process commits events (``CommitSignal`` is one of the
service's commit listeners) and otherwise polls every ``sse_poll_interval`` seconds, which
picks up events committed by other processes. Reading always goes through the event table
after a sequence cursor, so a wake-up is only a hint and nothing is missed or repeated. Idle
streams send a comment every ``sse_heartbeat_interval`` seconds, which keeps proxies from
closing them and lets the server notice a client that went away.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager, suppress

from starlette.concurrency import run_in_threadpool

from groupwire.app import Groupwire
from groupwire.domain.models import Event

BATCH = 100


class CommitSignal:
    """Wakes every open stream, from whichever thread committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def __call__(self, events: list[Event]) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with suppress(RuntimeError):  # that loop has closed; its stream is gone
                loop.call_soon_threadsafe(flag.set)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._waiters)

    @contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._waiters.discard(entry)


def sse_message(event: Event) -> str:
    data = json.dumps(event.envelope(), separators=(",", ":"))
    return f"id: {event.sequence}\nevent: {event.type}\ndata: {data}\n\n"


async def tail(
    gw: Groupwire, signal: CommitSignal, *, after: int, types: Sequence[str] | None
) -> AsyncIterator[str]:
    """Yield SSE messages for every event after ``after`` (of ``types``), forever.

    Ends when the client disconnects: the server then cancels this generator, and leaving
    ``signal.listen()`` unregisters the stream.
    """
    heartbeat = gw.settings.sse_heartbeat_interval
    poll = gw.settings.sse_poll_interval
    cursor = after
    with signal.listen() as woken:
        yield f"retry: 2000\n: tailing events after {cursor}\n\n"
        quiet_since = time.monotonic()
        while True:
            woken.clear()
            events = await run_in_threadpool(
                gw.events.list, type=list(types) if types else None, after=cursor, limit=BATCH
            )
            for event in events:
                cursor = event.sequence
                yield sse_message(event)
            if events:
                quiet_since = time.monotonic()
                if len(events) == BATCH:
                    continue
            idle = time.monotonic() - quiet_since
            if idle >= heartbeat:
                yield ": heartbeat\n\n"
                quiet_since = time.monotonic()
                idle = 0.0
            with suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(poll, heartbeat - idle))
