"""Medusa's JS SDK (``@medusajs/js-sdk`` 2.21.2, unmodified) driven against a served Groupwire.

``tests/sdk/project`` is a tiny npm project: its ``package.json`` pins the SDK, its committed
``package-lock.json`` pins the rest, and ``run-sdk.mjs`` calls every method of
``sdk.admin.customer`` and ``sdk.admin.customerGroup`` and prints a JSON report of each call.
The project is installed once (``npm ci``, a few hundred kB) into the tests' npm cache,
``~/.cache/groupwire/js-sdk-<hash of the lock>/``, by the Medusa harness's installer.

``served_groupwire`` runs the real thing a Medusa admin would point the SDK at: ``groupwire
serve`` as a separate process on a free port, with an admin API key made beforehand.
Node.js or npm missing is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from groupwire import Groupwire
from groupwire.auth.keys import create_key
from tests.medusa.harness import MedusaHarnessError, free_port, installed_node_modules, tail

PROJECT = Path(__file__).resolve().parent / "project"
SCRIPT = "run-sdk.mjs"
REPO = Path(__file__).resolve().parents[2]
MINIMUM_NODE = 20  # @medusajs/js-sdk 2.21.2's engines: node >=20
STARTUP_SECONDS = 60
SCRIPT_SECONDS = 180

Report = dict[str, Any]


@dataclass(frozen=True)
class ServedGroupwire:
    base_url: str
    api_key: str
    """A secret key with the admin scope; the SDK sends it as Basic ``<key>:``."""
    log_path: Path


def require_node() -> None:
    """Fail the test loudly when Node.js (20+) or npm is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the JS SDK tests need {' and '.join(missing)} on PATH (Node.js {MINIMUM_NODE}+)",
            pytrace=False,
        )
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MINIMUM_NODE:
        pytest.fail(f"@medusajs/js-sdk 2.21.2 needs Node.js {MINIMUM_NODE}+, found {version}")


def sdk_workdir(workdir: Path) -> Path:
    """``workdir`` with the script and a link to the cached, locked ``node_modules``."""
    require_node()
    try:
        node_modules = installed_node_modules(PROJECT, "js-sdk")
    except MedusaHarnessError as error:
        pytest.fail(f"installing the JS SDK project failed: {error}", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(PROJECT / SCRIPT, workdir / SCRIPT)
    link = workdir / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules, target_is_directory=True)
    return workdir


def run_sdk(workdir: Path, base_url: str, api_key: str, tag: str) -> Report:
    """Run ``run-sdk.mjs`` against ``base_url`` and return its report."""
    done = subprocess.run(
        ["node", SCRIPT, base_url, api_key, tag],
        cwd=sdk_workdir(workdir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SCRIPT_SECONDS,
    )
    assert done.returncode == 0, f"run-sdk.mjs exited with {done.returncode}:\n{done.stderr}"
    report: Report = json.loads(done.stdout)
    (workdir / f"report-{tag}.json").write_text(done.stdout)  # for a look after a failure
    return report


@contextlib.contextmanager
def served_groupwire(database_url: str, workdir: Path) -> Iterator[ServedGroupwire]:
    """``groupwire serve`` on a free port and a migrated ``database_url``, with an admin key."""
    gw = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    try:
        _, secret = create_key(gw.engine, "js-sdk", ["admin"])
    finally:
        gw.close()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = workdir / "groupwire-serve.log"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GROUPWIRE_PLUGINS": ""}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "groupwire.cli", "serve", "--port", str(port)),
                *("--db", database_url, "--log-level", "warning"),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(base_url, process, log_path)
        yield ServedGroupwire(base_url=base_url, api_key=secret, log_path=log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"groupwire serve exited with {process.returncode}:\n" + tail(log_path, 40)
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"groupwire serve was not healthy after {STARTUP_SECONDS} s:\n" + tail(log_path, 40)
            )
        time.sleep(0.1)


def steps_by_name(report: Report) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in report["steps"]}
