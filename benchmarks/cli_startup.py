"""The command line's start-up: ``uv run python benchmarks/cli_startup.py [--runs 7]``.

Each command is a fresh interpreter (as a shell runs it), timed from start to exit, the runs
of every command interleaved so that all see the same machine; the median of ``--runs``.
The baseline, measured in the same run, is ``python -c "import typer"``; next to it, a bare
Typer app of two commands and one root option answering ``--help`` and a command's
``--help`` (Typer's own cost of building and printing a help, the floor of any Typer command
line: with Typer 0.29 a command's help imports pydantic and markdown-it, and the bare app
alone takes several times ``import typer``; both apps print Click's plain help,
``rich_markup_mode=None``, which saves the import of Rich's help renderer). Target:
``groupwire --help`` and ``groupwire medusa status --help`` within 2x the baseline; the last
column compares each with the bare app's same help, which is what Groupwire's own imports
add.

The property that makes it fast (no FastAPI, SQLAlchemy, psycopg... imported for a help) is
held by ``tests/cli/test_cli_startup.py``; this only measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 2.0
BARE_APP = """
from typing import Annotated
import typer
app = typer.Typer(rich_markup_mode=None)  # as groupwire.cli: plain help
@app.callback()
def root(db: Annotated[str | None, typer.Option(help="A database URL.")] = None) -> None:
    pass
@app.command()
def one(count: int = 1) -> None:
    pass
@app.command()
def two() -> None:
    pass
app(prog_name="bare")
"""


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (median)")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_APP)
        commands = {
            'python -c "import typer"': [python, "-c", "import typer"],
            "a bare Typer app --help": [python, str(bare), "--help"],
            "a bare Typer app one --help": [python, str(bare), "one", "--help"],
            "groupwire --help": [python, "-m", "groupwire.cli", "--help"],
            "groupwire medusa status --help": [
                python,
                "-m",
                "groupwire.cli",
                "medusa",
                "status",
                "--help",
            ],
            "groupwire groups add --help": [
                python,
                "-m",
                "groupwire.cli",
                "groups",
                "add",
                "--help",
            ],
        }
        os.environ.setdefault("COLUMNS", "100")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # a first, unmeasured run each: warm caches
            seconds(command)
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(seconds(command))
    baseline_name = next(iter(commands))
    baseline = statistics.median(times[baseline_name])
    bare_root = statistics.median(times["a bare Typer app --help"])
    bare_command = statistics.median(times["a bare Typer app one --help"])
    print(f"| command | median of {args.runs} | / import typer | / the bare app's same help |")
    print("|---|---|---|---|")
    short = []
    for name in commands:
        median = statistics.median(times[name])
        ratio = median / baseline
        verdict = ""
        if name.startswith("groupwire"):
            verdict = " ok" if ratio <= TARGET else " OVER"
            if ratio > TARGET and name != "groupwire groups add --help":
                short.append(name)
        floor = ""
        if name.startswith("groupwire"):
            same = bare_root if name == "groupwire --help" else bare_command
            floor = f"{median / same:.2f}x"
        print(f"| {name} | {median * 1000:.0f} ms | {ratio:.2f}x{verdict} | {floor} |")
    print(
        f"target: groupwire --help and groupwire medusa status --help within {TARGET:.0f}x"
        f" import typer: {'met' if not short else 'missed by ' + ', '.join(short)}"
    )


if __name__ == "__main__":
    main()
