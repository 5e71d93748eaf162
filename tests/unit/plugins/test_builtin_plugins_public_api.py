"""The built-in plugins are written as a third party would write them: every module under
plugins/ imports from gitd only its public plugin API (``gitd``, ``gitd.plugin_api``) and the
operator helpers documented for kopf handlers (``gitd.operator``), and never reaches into
another plugin (no absolute ``gitd_plugins.OTHER``, no relative import above its own package)."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PUBLIC = ("gitd", "gitd.plugin_api")


def imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, relative level) of each import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def offences(path: Path) -> list[str]:
    rel = path.relative_to(PLUGINS)
    plugin = rel.parts[0]
    depth = len(rel.parts) - 1  # packages between the module and plugins/ (1: the plugin's own)
    out = []
    for line, module, level in imports(path):
        where = f"{rel}:{line}"
        if level:
            if level > depth:
                out.append(f"{where}: relative import above the {plugin} plugin's package")
        elif module == "gitd" or module.startswith("gitd."):
            if module not in PUBLIC and not (module == "gitd.operator" or module.startswith("gitd.operator.")):
                out.append(f"{where}: {module} is not the public plugin API")
        elif module.startswith("gitd_plugins.") and module.split(".")[1] != plugin:
            out.append(f"{where}: imports another plugin ({module})")
    return out


def test_every_builtin_plugin_imports_only_the_public_api() -> None:
    modules = sorted(PLUGINS.rglob("*.py"))
    assert len({p.relative_to(PLUGINS).parts[0] for p in modules}) >= 7  # policy ... finetune
    bad = [offence for path in modules for offence in offences(path)]
    assert bad == []


def test_the_check_catches_what_it_forbids(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "plugins" / "demo" / "sub"
    bad.mkdir(parents=True)
    (bad / "mod.py").write_text("from gitd.store.db import Store\nimport gitd.hub.files\n"
                                "from gitd_plugins.spaces import proxy\nfrom ... import other\n"
                                "from .. import fine\nfrom gitd import PluginContext\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PLUGINS"]), "PLUGINS", tmp_path / "plugins")
    found = offences(bad / "mod.py")
    assert [f.split(": ", 1)[1] for f in found] == [
        "gitd.store.db is not the public plugin API", "gitd.hub.files is not the public plugin API",
        "imports another plugin (gitd_plugins.spaces)", "relative import above the demo plugin's package"]
