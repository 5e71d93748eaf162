"""The ``gitd_harness`` fixture (a pytest plugin that gitd registers through ``pytest11``).

``gitd_harness(PluginClass, settings={...})`` returns a ``gitd.testing.PluginHarness``
in a fresh data directory under the test's ``tmp_path``, closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def gitd_harness(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from gitd.testing import PluginHarness

    made: list[PluginHarness] = []

    def make(plugin: Any, **kwargs: Any) -> PluginHarness:
        harness = PluginHarness(plugin, tmp_path / f"gitd-{len(made)}", **kwargs)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
