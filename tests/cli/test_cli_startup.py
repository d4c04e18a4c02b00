"""The command line starts without the stack it does not need yet.

``groupwire --help`` (and any command's ``--help``) must not pay for FastAPI, SQLAlchemy, the
database drivers, Redis or the HTTP clients: each command imports what it uses when it runs
(docs/cli.md). Checked in a fresh interpreter, through ``sys.modules``, not with a clock:
timings belong in ``benchmarks/cli_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.conftest import REPO

HEAVY = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "aiohttp",
    "httpx",
    "redis",
    "uvicorn",
    "pydantic_settings",  # pydantic itself Typer imports to build a command's parameters
    "jinja2",
    "ulid",
    "bullmq",
    "aiosmtplib",
    "orjson",
)
# Not heavy, but no help needs them: Rich prints a command's results (its consoles, tables and
# progress bars are imported by the commands that print), pluggy runs the hooks of a service.
NOT_FOR_A_HELP = ("rich", "pluggy")
PROBE = """
import json, sys
from groupwire.cli import app
try:
    app(prog_name="groupwire", args=sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


BARE_APP = """
import json, sys
from typing import Annotated
import typer
app = typer.Typer(rich_markup_mode=None)
@app.callback()
def root(db: Annotated[str | None, typer.Option(help="A database URL.")] = None) -> None:
    pass
@app.command()
def one(count: int = 1) -> None:
    pass
try:
    app(prog_name="bare", args=sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def modules_after(*args: str, probe: str = PROBE) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("medusa", "status", "--help"),
        ("groups", "add", "--help"),
        ("serve", "--help"),
        ("webhooks", "--help"),
    ],
    ids=" ".join,
)
def test_help_imports_none_of_the_heavy_stack(args: tuple[str, ...]) -> None:
    loaded = modules_after(*args)

    assert "typer" in loaded  # the probe did run the command line
    assert sorted(loaded & set(HEAVY)) == []
    assert sorted(loaded & set(NOT_FOR_A_HELP)) == []


def test_the_root_help_imports_only_what_a_bare_typer_apps_help_does() -> None:
    """Besides Groupwire's own light modules (the command line's and the domain's), the root
    ``--help`` loads no module a two-command Typer app's ``--help`` does not load too."""
    loaded = modules_after("--help")
    bare = modules_after("--help", probe=BARE_APP)

    assert "typer" in bare
    assert sorted(loaded - bare - {"groupwire", "__future__"}) == []


def test_the_public_names_still_import_from_the_package_root() -> None:
    """``groupwire/__init__.py`` resolves its names on first use (PEP 562)."""
    import groupwire
    from groupwire import Groupwire, HookRejected, hookimpl
    from groupwire.app import Groupwire as Defined
    from groupwire.hooks import hookimpl as marker

    assert (Groupwire, hookimpl) == (Defined, marker)
    assert issubclass(HookRejected, groupwire.GroupwireError)
    assert set(groupwire.__all__) <= set(dir(groupwire))
    with pytest.raises(AttributeError):
        _ = groupwire.NoSuchName  # type: ignore[attr-defined]


def test_the_capture_default_events_are_the_publishers() -> None:
    """``groupwire medusa capture --medusa-events`` names its default without importing the
    adapter: it must stay the publisher's own default."""
    from groupwire.cli import medusa
    from groupwire.medusa.publish import DEFAULT_EVENTS

    assert ",".join(DEFAULT_EVENTS) == medusa.DEFAULT_EVENTS
