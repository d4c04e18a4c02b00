"""Fixtures for the command line: an in-process runner and real ``groupwire`` processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from groupwire.cli import app
from tests.cli import recording_plugin

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "tests.cli.recording_plugin"

Invoke = Callable[..., Result]


@pytest.fixture
def cli() -> Invoke:
    """``cli("groups", "list", "--db", url)``: run a command in this process.

    A wide terminal keeps Rich from wrapping, and no plugin is loaded unless a test asks.
    """
    runner = CliRunner()

    def invoke(*args: Any, env: dict[str, str] | None = None) -> Result:
        environment = {"COLUMNS": "200", "GROUPWIRE_PLUGINS": "", **(env or {})}
        return runner.invoke(app, [str(a) for a in args], env=environment)

    return invoke


@pytest.fixture
def recording() -> Iterator[recording_plugin.Recorder]:
    """The test plugin's record of hook calls, empty at the start of the test."""
    recording_plugin.RECORDER.reset()
    yield recording_plugin.RECORDER
    recording_plugin.RECORDER.reset()


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_process(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m groupwire.cli ARGS`` (stdout to ``log``, stderr to ``log.err``)."""
    environment = {**os.environ, "GROUPWIRE_PLUGINS": "", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), environment.get("PYTHONPATH", "")) if p
    )
    with log.open("wb") as stdout, log.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "groupwire.cli", *args],
            cwd=REPO,
            env=environment,
            stdout=stdout,
            stderr=stderr,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Make sure a process started by a test is gone (the finally of every such test)."""
    if process.poll() is None:
        process.kill()
        process.wait(10)
