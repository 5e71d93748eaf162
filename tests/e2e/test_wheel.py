"""The built wheel works on its own, outside the source tree.

The wheel is built from a copy of the source (as CI or a release would, offline: no
build isolation) and installed, without its dependencies, into a fresh venv that has no
pip and cannot see the source tree. Its dependencies are then made visible to that venv
one distribution at a time: exactly the closure of the wheel's own ``Requires-Dist``
(taken from the test venv, where they are installed), linked into the new venv's
site-packages. So a module missing from the wheel, a data file the daemon reads that is
not shipped, or an import of a package the wheel does not declare, fails here. Then the
installed ``gitd`` serves a real push and clone, over HTTP and over SSH.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.e2e.sshclient import SSHClient, keygen
from tests.support import Git, with_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Source directory -> where its files land in the wheel (pyproject.toml's package-dir).
PACKAGE_DIRS = {"gitd": "gitd", "hooks": "gitd/_hooks", "config": "gitd/_config", "plugins": "gitd_plugins"}
# Not needed to build the wheel (and large, or not ours).
NOT_COPIED = {".git", ".venv", "build", "dist", "data", "bench", "tests", "examples", ".pytest_cache", ".ruff_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(directory) == ROOT:
        skip |= NOT_COPIED & set(names)
    return skip


def build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_ignore, symlinks=True)
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", "-w", str(out), str(source)], check=True, timeout=300)
    (wheel,) = out.glob("gitd-*.whl")
    return wheel


def expected_files() -> set[str]:
    """Every file of the packages' source directories, at its place in the wheel."""
    expected = set()
    for src, dest in PACKAGE_DIRS.items():
        for path in (ROOT / src).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"{dest}/{path.relative_to(ROOT / src).as_posix()}")
    return expected


def dependency_closure(requires: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions that ``requires`` (a wheel's Requires-Dist) needs, transitively,
    without any extra; each must satisfy the version its requirer asks for."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [(Requirement(r), "") for r in requires]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = found.get(name) or importlib.metadata.distribution(req.name)
        assert req.specifier.contains(dist.version, prereleases=True), f"{req} but {dist.version} is installed"
        if name in found and not req.extras:
            continue
        found[name] = dist
        for sub in dist.requires or []:
            todo.extend((Requirement(sub), e) for e in ("", *sorted(req.extras)))
    return found


def link_distributions(dists: dict[str, importlib.metadata.Distribution], site: Path) -> None:
    """Make each distribution importable in ``site``: a symlink per top-level entry of its RECORD."""
    for name, dist in dists.items():
        assert dist.files, f"{name} has no RECORD: cannot tell which files are its own"
        for top in {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}:
            target = site / top
            if not target.exists() and not target.is_symlink():
                target.symlink_to(Path(str(dist.locate_file(top))))


def clean_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}


def test_the_wheel_installs_into_a_bare_venv_and_serves_push_and_clone(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read("gitd-0.1.0.dist-info/METADATA").decode()
    missing = expected_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--disable-pip-version-check", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    requires = [v.strip() for k, v in (line.split(":", 1) for line in metadata.splitlines() if ":" in line)
                if k == "Requires-Dist"]
    link_distributions(dependency_closure(requires), site)

    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    work = tmp_path / "cwd"  # not the source tree: nothing of it may be on sys.path
    work.mkdir()

    # Every module of the installed packages imports, from the venv, with only the declared dependencies.
    probe = """
import importlib, importlib.metadata as md, json, pkgutil
import gitd, gitd_plugins
mods = [m.name for pkg in (gitd, gitd_plugins) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
# gitd.testing's pytest plugin is loaded by pytest only (a plugin author's test run), not by gitd;
# the spaces, inference and finetune plugins' kubernetes runtimes and operators need the
# `operator` extra (kopf, kubernetes); the inference engine's torch and transformers (the
# `inference` extra) are imported only when it runs, and the finetune training program's torch,
# transformers, peft and datasets (the `finetune` extra) only when a job runs.
optional = ("gitd.testing.pytest_plugin", "gitd_plugins.spaces.kube", "gitd_plugins.spaces.operator.",
            "gitd_plugins.inference.kube", "gitd_plugins.inference.operator.",
            "gitd_plugins.finetune.kube", "gitd_plugins.finetune.operator.")
mods = [m for m in mods if not m.startswith(optional)]
files = {m: importlib.import_module(m).__file__ for m in ["gitd", "gitd_plugins", *mods]}
plugins = {ep.name: str(ep.dist.locate_file("")) for ep in md.entry_points(group="gitd.plugins")}
print(json.dumps({"files": files, "plugins": plugins}))
"""
    out = subprocess.run([python, "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert {"gitd.lfs.storage.s3", "gitd._hooks", "gitd._config", "gitd_plugins.policy",
            "gitd_plugins.dataset_viewer.console"} <= set(found["files"])
    # The built-in plugins load by default, so what they import (pyarrow, duckdb, gguf) is declared.
    assert {"policy", "metadata", "datasets"} <= set(found["plugins"]), found["plugins"]
    outside = {m: f for m, f in found["files"].items() if not Path(f).is_relative_to(site)}
    assert not outside, f"imported from outside the venv: {outside}"
    assert found["plugins"] and all(Path(p) == site for p in found["plugins"].values()), found["plugins"]

    gitd = venv / "bin" / "gitd"
    data = tmp_path / "data"

    def cli(*args: str) -> str:
        proc = subprocess.run([gitd, "--data", str(data), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"gitd {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    cli("init", str(data))
    hook = (data / "hooks" / "pre-receive").read_bytes()
    if shutil.which("cc"):
        assert hook.startswith(b"\x7fELF")  # compiled from the shipped gitd_hook.c
    else:
        assert hook.startswith(f"#!{python}".encode())  # the shipped gitd_hook.py, run by the venv's Python
    cli("user", "add", "alice")
    token = cli("token", "create", "alice", "--scope", "write", "--name", "wheel").strip()
    cli("repo", "create", "alice/model", "--empty")
    key = keygen(tmp_path / "id_alice")
    cli("sshkey", "add", "alice", str(key.with_suffix(".pub")))

    log = tmp_path / "serve.log"
    with open(log, "ab") as log_file:
        proc = subprocess.Popen([gitd, "--data", str(data), "serve", "--http", "127.0.0.1:0", "--ssh", "127.0.0.1:0"],
                                cwd=work, env=env, stdout=log_file, stderr=log_file, start_new_session=True)
    try:
        info = wait_for_serve(proc, data, log)
        git = Git(tmp_path / "git-home")
        files = {"config.json": '{"hidden_size": 8}\n', "weights/README.md": "from the wheel\n"}
        src = git.init_work(tmp_path / "w", files)
        git("push", with_token(f"{info['http']}/alice/model.git", token), "main", cwd=src)
        head = git.out("rev-parse", "HEAD", cwd=src)

        git("clone", "-q", f"{info['http']}/alice/model.git", str(tmp_path / "over-http"))
        host, port = info["ssh"].rsplit(":", 1)
        known_hosts = tmp_path / "known_hosts"
        host_key = (data / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        known_hosts.write_text(f"[{host}]:{port} {host_key[0]} {host_key[1]}\n")
        ssh = SSHClient(host, int(port), key, known_hosts)
        git("clone", "-q", ssh.url("alice/model.git"), str(tmp_path / "over-ssh"), env=ssh.env())
        for clone in ("over-http", "over-ssh"):
            assert git.out("rev-parse", "HEAD", cwd=tmp_path / clone) == head
            assert (tmp_path / clone / "weights" / "README.md").read_text() == "from the wheel\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    assert code == 0, log.read_text(errors="replace")[-3000:]


def wait_for_serve(proc: subprocess.Popen, data: Path, log: Path, timeout: float = 60) -> dict:
    info = data / "run" / "serve.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gitd serve exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if info.exists():
            with contextlib.suppress(json.JSONDecodeError, KeyError):
                parsed = json.loads(info.read_text())
                if parsed["http"] and parsed["ssh"]:
                    return parsed
        time.sleep(0.05)
    raise AssertionError(f"gitd serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
