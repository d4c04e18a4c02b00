"""A subscriber process for the crash test: records each handled sequence, slowly.

Usage: python crash_subscriber.py DATABASE_URL OUTPUT_FILE
"""

from __future__ import annotations

import os
import sys
import time

from groupwire import Groupwire


def main() -> None:
    url, output = sys.argv[1], sys.argv[2]
    gw = Groupwire.open(url, load_entry_points=False, relay_poll_interval=0.05)
    with open(output, "a", buffering=1) as out:

        def record(event):
            time.sleep(0.002)
            out.write(f"{event.sequence}\n")
            out.flush()
            os.fsync(out.fileno())

        gw.subscribe("customer_group.customer_added", record, name="crash-counter")
        gw.start()
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
