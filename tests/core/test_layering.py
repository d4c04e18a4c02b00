"""The event delivery modules are handed what they need; they never import the facade that
builds them (``groupwire.app``), so the two cannot grow into an import circle again."""

from __future__ import annotations

import ast
from pathlib import Path

import groupwire

EVENTS = Path(groupwire.__file__).parent / "events"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any level (TYPE_CHECKING blocks and functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_given_the_event_modules_then_none_imports_the_groupwire_facade() -> None:
    offenders = {
        path.name: sorted(
            m for m in imported_modules(path) if m in {"groupwire.app", "groupwire.Groupwire"}
        )
        for path in sorted(EVENTS.glob("*.py"))
    }

    assert {"worker.py", "redis_bus.py"} <= set(offenders)
    assert {name: found for name, found in offenders.items() if found} == {}


PACKAGE = Path(groupwire.__file__).parent
MEDUSA_ADAPTER = PACKAGE / "medusa"
MEDUSA_COMMANDS = PACKAGE / "cli" / "medusa.py"


def test_given_the_medusa_adapter_then_only_its_own_cli_commands_import_it() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if MEDUSA_ADAPTER not in path.parents
        and any(
            m == "groupwire.medusa" or m.startswith("groupwire.medusa.")
            for m in imported_modules(path)
        )
    )

    assert importers == [str(MEDUSA_COMMANDS.relative_to(PACKAGE))]
