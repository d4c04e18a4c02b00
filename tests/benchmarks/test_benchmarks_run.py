"""Every benchmark still runs end to end, on tiny sizes (its figures are not checked here:
benchmarks measure on demand, never in CI; this only keeps them from rotting unseen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")

RUNS = {
    "core": ["core_bench.py", "--customers", "300", "--postgres", POSTGRES],
    "webhooks": ["webhook_delivery.py", "--events", "200", "--commits", "20"],
    "stats": ["stats_bench.py", "--events", "2000", "--groups", "5"],
    "api": ["api_throughput.py", "--requests", "40", "--concurrency", "4"],
    "api_floor": ["api_floor.py", "--quick", "--postgres", POSTGRES],
    "cli_startup": ["cli_startup.py", "--runs", "1"],
    "idempotency": ["idempotency_cost.py", "--writes", "10", "--postgres", POSTGRES],
    "redis": ["redis_throughput.py", "--events", "300", "--workers", "1"],
    "smart_groups": [
        "smart_groups.py",
        "--customers",
        "300",
        "--rules",
        "5",
        "--updates",
        "10",
        "--postgres",
        POSTGRES,
    ],
    "redis_loss": [
        "redis_loss.py",
        "--rate",
        "200",
        "--before",
        "1",
        "--after",
        "1",
        "--workers",
        "1",
    ],
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_benchmark_runs_to_its_report(name: str, tmp_path: Path) -> None:
    script, *args = RUNS[name]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.strip(), "the benchmark printed no figures"
