"""``gitd operator``: one kopf operator process for every plugin that ships one.

A plugin ships an operator as the module ``PACKAGE.operator.handlers`` beside its plugin
class (the spaces plugin's ``gitd_plugins.spaces.operator.handlers``, the inference plugin's
``gitd_plugins.inference.operator.handlers``, a third party's alike). The command imports
each enabled plugin's module, whose kopf decorators register its handlers, and runs kopf
(the ``operator`` extra) in the given namespaces. The handlers share ``memo.applier``
(``gitd.operator.applier.KubeApplier``).
"""

from __future__ import annotations

import importlib
import importlib.util
import types
from collections.abc import Sequence

from gitd.plugins.host import PluginHost

SUFFIX = "operator.handlers"


def operator_modules(plugins: PluginHost) -> list[str]:
    """The operator modules of the loaded plugins, by plugin name."""
    found: list[str] = []
    for name in plugins.names():
        obj = plugins.pm.get_plugin(name)
        module = obj.__name__ if isinstance(obj, types.ModuleType) else type(obj).__module__
        is_package = isinstance(obj, types.ModuleType) and hasattr(obj, "__path__")
        package = module if is_package else module.rpartition(".")[0]
        if not package:
            continue
        candidate = f"{package}.{SUFFIX}"
        try:
            spec = importlib.util.find_spec(candidate)
        except (ModuleNotFoundError, ValueError):
            spec = None
        if spec is not None and candidate not in found:
            found.append(candidate)
    return found


def run(modules: Sequence[str], namespaces: Sequence[str], clusterwide: bool) -> None:
    """Import ``modules`` and run kopf until it is stopped (SIGINT, SIGTERM)."""
    import kopf

    for module in modules:
        importlib.import_module(module)
    kopf.configure(verbose=False)
    kopf.run(standalone=True, clusterwide=clusterwide, namespaces=list(namespaces))
