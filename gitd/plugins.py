"""The pluggy plugin manager: plugins come from the ``gitd.plugins`` entry points."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from gitd import hookspecs
from gitd.config import Config

log = logging.getLogger("gitd.plugins")

ENTRY_POINT_GROUP = "gitd.plugins"


class PluginHost:
    def __init__(self, config: Config):
        self.config = config
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.load_errors: dict[str, str] = {}

    def enabled(self, name: str) -> bool:
        if name in self.config.get_list("plugins.disabled"):
            return False
        return bool(self.settings(name, include_enabled=True).get("enabled", True))

    def settings(self, name: str, *, include_enabled: bool = False) -> dict[str, Any]:
        table = self.config.section(f"plugins.{name}")
        if not include_enabled:
            table.pop("enabled", None)
        return table

    def load_entry_points(self) -> PluginHost:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if not self.enabled(ep.name) or self.pm.has_plugin(ep.name):
                continue
            try:
                self.register(ep.name, ep.load())
            except Exception as exc:  # a broken plugin must not take the daemon down
                log.exception("plugin %s failed to load", ep.name)
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
        return self

    def register(self, name: str, obj: Any) -> None:
        """Register ``obj`` as plugin ``name``; a class is instantiated with its settings."""
        if isinstance(obj, type):
            obj = obj(self.settings(name))
        self.pm.register(obj, name=name)
        log.debug("plugin %s registered", name)

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def implementations(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, function) for ``hook``, in the order pluggy would call them."""
        caller = getattr(self.pm.hook, hook)
        return [(impl.plugin_name, impl.function) for impl in reversed(caller.get_hookimpls())]

    def implementation(self, hook: str, plugin: str) -> Callable[..., Any] | None:
        for name, function in self.implementations(hook):
            if name == plugin:
                return function
        return None
