"""A plugin for the command-line tests, loaded by name (``--plugin`` / ``GROUPWIRE_PLUGINS``).

* ``before_add_customer_to_group`` records the size of every call (one call per chunk) and
  vetoes any call with a customer whose metadata says ``{"refuse": true}``;
* ``after_add_customer_to_group`` interrupts the command (``KeyboardInterrupt``, as Ctrl-C
  would) after the committed call number ``RECORDER.interrupt_after``, when that is set;
* ``register_subscribers`` subscribes a handler appending ``sequence type`` lines to the file
  named by ``GROUPWIRE_TEST_RECORD_FILE`` (for the worker's test, which runs as a process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from groupwire import Context, Customer, CustomerGroup, Event, HookRejected, hookimpl

RECORD_FILE = "GROUPWIRE_TEST_RECORD_FILE"


class Recorder:
    def __init__(self) -> None:
        self.add_calls: list[int] = []
        self.committed_adds = 0
        self.interrupt_after: int | None = None

    def reset(self) -> None:
        self.add_calls.clear()
        self.committed_adds = 0
        self.interrupt_after = None


RECORDER = Recorder()


@hookimpl
def before_add_customer_to_group(
    group: CustomerGroup, customers: list[Customer], context: Context
) -> None:
    RECORDER.add_calls.append(len(customers))
    for customer in customers:
        if (customer.metadata or {}).get("refuse"):
            raise HookRejected(f"{customer.email} is refused by the test plugin")


@hookimpl
def after_add_customer_to_group(
    group: CustomerGroup, customer_ids: list[str], context: Context
) -> None:
    RECORDER.committed_adds += 1
    if RECORDER.committed_adds == RECORDER.interrupt_after:
        raise KeyboardInterrupt


@hookimpl
def register_subscribers(gw: Any) -> None:
    target = os.environ.get(RECORD_FILE)
    if not target:
        return

    def record(event: Event) -> None:
        with Path(target).open("a") as handle:
            handle.write(f"{event.sequence} {event.type}\n")

    gw.subscribe("*", record, name="test.recorder")
