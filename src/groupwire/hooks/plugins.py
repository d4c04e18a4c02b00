"""Finding and registering plugins: installed entry points, configured modules, objects."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from groupwire.hooks import specs

ENTRY_POINT_GROUP = "groupwire.plugins"

PluginManager = pluggy.PluginManager


def make_plugin_manager(
    plugins: Iterable[object | str] = (), *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with Groupwire's specs and the given plugins registered.

    ``plugins`` holds modules, objects, or dotted module paths (as in ``GROUPWIRE_PLUGINS``).
    Installed packages that declare an entry point in group ``groupwire.plugins`` are loaded
    too unless ``load_entry_points`` is false.
    """
    manager = pluggy.PluginManager("groupwire")
    manager.add_hookspecs(specs)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        register(manager, plugin)
    return manager


def register(manager: pluggy.PluginManager, plugin: object | str) -> None:
    """Register a plugin object or module, importing it first when given as a dotted path."""
    if isinstance(plugin, str):
        name = plugin.strip()
        if not name or manager.has_plugin(name):
            return
        manager.register(importlib.import_module(name), name=name)
        return
    if not manager.is_registered(plugin):
        manager.register(plugin)


def has_impls(hook: pluggy.HookCaller) -> bool:
    """Whether any plugin implements a hook (so the service can skip preparing its arguments)."""
    return bool(hook.get_hookimpls())
