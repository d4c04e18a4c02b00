"""Plugins and hooks: the pluggy markers, the specs and how plugins are found."""

from groupwire.hooks.plugins import PluginManager, make_plugin_manager
from groupwire.hooks.specs import hookimpl, hookspec

__all__ = ["PluginManager", "hookimpl", "hookspec", "make_plugin_manager"]
