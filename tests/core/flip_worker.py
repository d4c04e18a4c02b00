"""A process running the scheduler of smart groups' flips, for the SIGKILL test.

Usage: python flip_worker.py DATABASE_URL MARKER_FILE [hold]

With ``hold``, the first removal a rule asks for is held in its before-hook (the flips it
claimed still locked by its open transaction) after writing MARKER_FILE, until the process
is killed. Without, it writes MARKER_FILE once started and applies flips as they fall due.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from groupwire import Groupwire, hookimpl


class Hold:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    @hookimpl
    def before_remove_customer_from_group(self, group, customers, reason, context):
        self.marker.write_text("holding")
        while True:  # until SIGKILL
            time.sleep(1)


def main() -> None:
    url, marker = sys.argv[1], Path(sys.argv[2])
    hold = len(sys.argv) > 3 and sys.argv[3] == "hold"
    plugins = [Hold(marker)] if hold else []
    gw = Groupwire.open(url, load_entry_points=False, plugins=plugins, smart_schedule_max_sleep=0.2)
    gw.start()
    if not hold:
        marker.write_text("started")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
