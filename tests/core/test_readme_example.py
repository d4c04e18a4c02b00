"""The README's Python example runs and does what the README says it does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "vip_welcome.py"


def test_the_vip_welcome_example_welcomes_ada_and_refuses_eve(database_url):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert "Welcome to VIP, Ada <ada@shop.example>!" in lines
    assert not [line for line in lines if "Eve" in line and "Welcome" in line]
    assert "Refused: VIP is for allow-listed domains only: eve@elsewhere.example" in lines
    types = [line.split()[1] for line in lines if line[:1].isdigit()]
    assert types == ["customer_group.created", "customer_group.customer_added"]
