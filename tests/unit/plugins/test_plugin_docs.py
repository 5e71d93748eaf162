"""The plugin guide shows the example plugin as it is in the repository."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "gitd-example-plugin"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_guide_shows_the_example_module_verbatim():
    module = (EXAMPLE / "gitd_example_plugin.py").read_text()
    assert module in code_blocks(GUIDE.read_text(), "python")


def test_the_guide_shows_the_example_entry_point():
    shown = tomllib.loads(code_blocks(GUIDE.read_text(), "toml")[0])
    real = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert shown["project"]["entry-points"] == real["project"]["entry-points"]
    assert shown["project"]["name"] == real["project"]["name"]


def test_the_readme_links_the_guide():
    assert "(docs/plugins.md)" in (ROOT / "README.md").read_text()
