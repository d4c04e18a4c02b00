"""Stopping long-running commands cleanly on SIGTERM and SIGINT (Ctrl+C).

A stopped ``serve`` or ``worker`` finishes what it is doing (the relay's current delivery, the
server's open requests), releases the database and exits with code 0: a supervisor asking a
process to stop is the normal end of its life, not a failure.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set when SIGTERM or SIGINT arrives; the previous handlers are restored after.

    Installed before the server starts, these handlers also absorb the signal the server
    re-raises after its own graceful shutdown, so the process ends normally.
    """
    requested = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
