"""The pluggy plugin manager: plugins come from the ``gitd.plugins`` entry points.

A plugin is enabled unless it is named in ``[plugins] disabled`` or its table
``[plugins.NAME]`` says ``enabled = false``; the rest of that table is its settings.
A plugin that cannot be loaded (import error, bad settings, a misspelt hook name) is
recorded in ``load_errors``; the hook chain then refuses pushes until it is fixed or
disabled, so a broken policy never lets a push through unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from gitd.config import Config, ConfigError
from gitd.plugins import hookspecs
from gitd.plugins.context import NO_SERVICES, PluginContext, PluginServices

log = logging.getLogger("gitd.plugins")

ENTRY_POINT_GROUP = "gitd.plugins"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def setting_bool(settings: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean setting that may also arrive as a string (from a GITD_PLUGINS__NAME__KEY variable)."""
    value = settings.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


class PluginHost:
    def __init__(self, config: Config, services: PluginServices = NO_SERVICES):
        self.config = config
        self.services = services
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.load_errors: dict[str, str] = {}
        self.contexts: dict[str, PluginContext] = {}

    def enabled(self, name: str) -> bool:
        if name in self.config.get_list("plugins.disabled"):
            return False
        try:
            return setting_bool(self.settings(name, include_enabled=True), "enabled", True)
        except ConfigError as exc:
            raise ConfigError(f"plugins.{name}.{exc}")

    def settings(self, name: str, *, include_enabled: bool = False) -> dict[str, Any]:
        table = self.config.section(f"plugins.{name}")
        if not include_enabled:
            table.pop("enabled", None)
        return table

    def load_entry_points(self) -> PluginHost:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if self.pm.has_plugin(ep.name) or ep.name in self.load_errors:
                log.warning("plugin name %s is registered twice (%s); keeping the first", ep.name, ep.value)
                continue
            try:
                if not self.enabled(ep.name):
                    log.info("plugin %s is disabled", ep.name)
                    continue
                self.register(ep.name, ep.load())
            except Exception as exc:  # a broken plugin must not take the daemon down
                log.error("plugin %s failed to load: %s: %s", ep.name, type(exc).__name__, exc,
                          exc_info=not isinstance(exc, ConfigError | pluggy.PluginValidationError))
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
        return self

    def context(self, name: str) -> PluginContext:
        """The context plugin ``name`` gets (its settings, storage, views, ...)."""
        found = self.contexts.get(name)
        if found is None:
            found = self.contexts[name] = PluginContext(name, self.settings(name), self.services)
        return found

    def register(self, name: str, obj: Any) -> None:
        """Register ``obj`` as plugin ``name``; a class is instantiated with its context (a
        mapping of its settings, see ``gitd.plugins.context``).

        Every marked method must name a hook of gitd.plugins.hookspecs (a misspelt hook would
        otherwise never run), and hook wrappers are refused: gitd calls each plugin on
        its own, so that one plugin's error is reported with its name.
        """
        if isinstance(obj, type):
            obj = obj(self.context(name))
        self.pm.register(obj, name=name)
        try:
            for caller in self.pm.get_hookcallers(obj) or []:
                if caller.spec is None:
                    raise pluggy.PluginValidationError(
                        obj, f"plugin {name}: {caller.name} is not a gitd hook (see gitd.plugins.hookspecs)")
                for impl in caller.get_hookimpls():
                    if impl.plugin is obj and (impl.hookwrapper or impl.wrapper):
                        raise pluggy.PluginValidationError(
                            obj, f"plugin {name}: {caller.name} is a hook wrapper; gitd does not run wrappers")
        except Exception:
            self.pm.unregister(obj)
            raise
        log.info("plugin %s loaded", name)

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def implementations(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, call) for ``hook``, in the order pluggy would call them.

        ``call`` takes the hook's keyword arguments and passes each implementation only
        the ones it declares, as pluggy does.
        """
        caller = getattr(self.pm.hook, hook)
        out: list[tuple[str, Callable[..., Any]]] = []
        for impl in reversed(caller.get_hookimpls()):
            out.append((impl.plugin_name, _bind(impl.function, impl.argnames)))
        return out

    def implementation(self, hook: str, plugin: str) -> Callable[..., Any] | None:
        for name, call in self.implementations(hook):
            if name == plugin:
                return call
        return None

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """(plugin name, answer) from every implementation of a contribution hook. A plugin
        that raises is logged and left out: one broken contribution never breaks the rest."""
        out = []
        for name, call in self.implementations(hook):
            try:
                answer = call(**kwargs)
            except Exception:
                log.exception("plugin %s failed in %s", name, hook)
                continue
            if answer is not None:
                out.append((name, answer))
        return out


def _bind(function: Callable[..., Any], argnames: tuple[str, ...]) -> Callable[..., Any]:
    def call(**kwargs: Any) -> Any:
        return function(**{name: kwargs[name] for name in argnames})

    return call
