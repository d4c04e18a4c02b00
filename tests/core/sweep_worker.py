"""A process saving a smart group's rule with ``stream`` and running its sweep, for the
SIGKILL test.

Usage: python sweep_worker.py DATABASE_URL GROUP_ID RULE_JSON MARKER_FILE

The sweep runs 10 customers a chunk; the third chunk that adds customers to the group is
held in its before-hook (its transaction open, uncommitted) after writing MARKER_FILE, until
the process is killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from groupwire import Groupwire, hookimpl


class HoldThirdAdd:
    def __init__(self, group_id: str, marker: Path) -> None:
        self.group_id = group_id
        self.marker = marker
        self.calls = 0

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        if group.id != self.group_id:
            return
        self.calls += 1
        if self.calls == 3:
            self.marker.write_text("holding")
            while True:  # until SIGKILL
                time.sleep(1)


def main() -> None:
    url, group_id, rule, marker = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    hold = HoldThirdAdd(group_id, Path(marker))
    gw = Groupwire.open(url, load_entry_points=False, plugins=[hold])
    gw.groups.update(group_id, rule=rule, stream=True)
    while gw.groups.sweep(group_id, limit=10) is not None:
        pass


if __name__ == "__main__":
    main()
