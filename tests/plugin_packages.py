"""Install plugin packages the way a third party's are installed, for a test daemon.

``install_plugin_packages`` runs ``pip install --no-deps --target DIR`` on the test
plugins (tests/plugins/gitd-test-plugins) and the documented example plugin
(examples/gitd-example-plugin). A daemon started with ``PYTHONPATH=DIR`` then finds
them through their ``gitd.plugins`` entry points, like any installed plugin.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = ROOT / "tests" / "plugins" / "gitd-test-plugins"
EXAMPLE_PLUGIN = ROOT / "examples" / "gitd-example-plugin"


def pip_install_target(packages: list[Path], target: Path, scratch: Path) -> None:
    """pip-install source trees into ``target`` (built from copies: the sources stay clean)."""
    copies = []
    for package in packages:
        copy = scratch / package.name
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        copies.append(str(copy))
    base = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--target", str(target)]
    # Offline and fast with the venv's setuptools; fall back to an isolated build.
    proc = subprocess.run([*base, "--no-build-isolation", "--no-index", *copies], capture_output=True)
    if proc.returncode != 0:
        proc = subprocess.run([*base, *copies], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{proc.stdout.decode()}\n{proc.stderr.decode()}")


def install_plugin_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test plugins and the example plugin, installed once per test session; returns
    the directory to put on the daemon's PYTHONPATH."""
    base = tmp_path_factory.getbasetemp() / "plugin-packages"
    target = base / "site"
    if not (base / "ok").exists():
        shutil.rmtree(base, ignore_errors=True)
        (base / "src").mkdir(parents=True)
        pip_install_target([TEST_PLUGINS, EXAMPLE_PLUGIN], target, base / "src")
        (base / "ok").touch()
    return target
