"""The OpenAPI document tells the truth: Schemathesis, every check, every operation, no finding.

Schemathesis's own engine runs in-process against the ASGI app (all phases: examples,
coverage, fuzzing, stateful), authenticated with an admin key, with the exceptions and
reasons of the repository's ``schemathesis.toml`` and a bounded number of examples per
operation. A finding is any failed check: an undocumented status, a response off its schema,
a schema-valid request refused, a schema-violating request accepted, a wrong ``Allow``...
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as engine_events

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys

ROOT = Path(__file__).parents[2]
EXAMPLES_PER_OPERATION = 8


@pytest.fixture
def sqlite_gw(tmp_path: Path) -> Iterator[Groupwire]:
    instance = Groupwire.open(f"sqlite:///{tmp_path / 'checks.db'}", load_entry_points=False)
    yield instance
    instance.close()


def run_config(secret: str) -> schemathesis.Config:
    """The repository's ``schemathesis.toml`` under the settings of this bounded run."""
    run = f"""
seed = 1
workers = 1

[headers]
Authorization = "Bearer {secret}"

[generation]
max-examples = {EXAMPLES_PER_OPERATION}
database = "none"

[checks]
enabled = true
"""
    return schemathesis.Config.from_str(run + (ROOT / "schemathesis.toml").read_text())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_given_every_check_over_every_operation_then_schemathesis_finds_nothing(
    sqlite_gw: Groupwire,
):
    _, secret = keys.create_key(sqlite_gw.engine, "checks", ["admin"])
    app = create_app(sqlite_gw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=run_config(secret))
        findings: list[str] = []
        scenarios = 0
        for event in from_schema(schema).execute():
            if isinstance(event, engine_events.ScenarioFinished):
                scenarios += 1
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.status == Status.FAILURE:
                            findings.append(f"{event.recorder.label}: {check.name}")
            elif isinstance(event, engine_events.NonFatalError):
                findings.append(f"error: {event.info.format()}")
            elif isinstance(event, engine_events.FatalError):
                raise AssertionError(f"schemathesis stopped: {event.exception!r}")
    assert scenarios >= 40
    assert findings == [], "\n".join(sorted(set(findings)))
