"""Building the C hook program that git runs for every push."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gitd.datainit import build_c_hook, install_hooks
from gitd.paths import DataDir

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


def interpreter(program: Path) -> bool:
    """Whether the ELF program asks for a dynamic loader (a PT_INTERP program header)."""
    return b"INTERP" in subprocess.run(["readelf", "-lW", str(program)], capture_output=True, check=True).stdout


def static_linking_works(tmp_path: Path) -> bool:
    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    return subprocess.run(["cc", "-static", "-o", str(tmp_path / "t"), str(src)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_the_c_hook_is_linked_statically_where_the_c_library_allows(tmp_path: Path):
    data = DataDir(tmp_path / "data")
    assert install_hooks(data, "c") == "c"
    hook = data.hooks / "pre-receive"
    assert interpreter(hook) is not static_linking_works(tmp_path)
    proc = subprocess.run([str(hook)], capture_output=True, env={})
    assert proc.returncode == 1 and b"did not come through the gitd daemon" in proc.stderr


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_without_static_linking_the_c_hook_is_linked_dynamically(tmp_path: Path, monkeypatch):
    # A compiler that refuses -static, as on hosts without the static C library.
    cc = tmp_path / "cc-no-static"
    cc.write_text('#!/bin/sh\nfor a; do [ "$a" = -static ] && { echo "cannot find -lc" >&2; exit 1; }; done\n'
                  'exec cc "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    data = DataDir(tmp_path / "data")
    data.hooks.mkdir(parents=True)
    binary = build_c_hook(data)
    assert binary is not None and interpreter(binary)
