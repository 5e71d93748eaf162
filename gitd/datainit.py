"""``gitd init``: create (or complete) a data directory without ever destroying data."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from gitd.config import Config, ConfigError, default_config_text
from gitd.datamode import is_empty_or_missing
from gitd.paths import DataDir
from gitd.store import Store

log = logging.getLogger("gitd.init")

HOOK_NAMES = ("pre-receive", "post-receive")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def host_key_fingerprint(data: DataDir) -> str:
    import asyncssh

    key = asyncssh.read_private_key(str(data.ssh_host_key))
    return key.get_fingerprint("sha256")


HOOK_PROGRAMS = ("auto", "c", "python")


def _c_compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


# Linked statically where the C library allows it: git starts the hook twice per push,
# and a static program skips the dynamic loader (a tenth of a millisecond each time).
C_HOOK_FLAGS = (("-O2", "-static"), ("-O2",))


def _hook_program_runs(program: Path) -> bool:
    """The compiled hook starts and answers (called under a name that is no hook's, it refuses)."""
    try:
        proc = subprocess.run([str(program)], capture_output=True, timeout=30, env={})
    except OSError:
        return False
    return proc.returncode == 1 and b"unknown hook" in proc.stderr


def build_c_hook(data: DataDir) -> Path | None:
    """Compile hooks/gitd_hook.c into DATA/hooks (once per source version); None without a compiler."""
    source = resources.files("gitd._hooks").joinpath("gitd_hook.c").read_bytes()
    version = hashlib.sha256(source + repr(C_HOOK_FLAGS).encode()).hexdigest()[:16]
    binary = data.hooks / f".gitd-hook-{version}"
    if binary.exists():
        return binary
    compiler = _c_compiler()
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory(dir=data.hooks) as tmp:
        src = Path(tmp) / "gitd_hook.c"
        src.write_bytes(source)
        out = Path(tmp) / "gitd-hook"
        error = ""
        for flags in C_HOOK_FLAGS:
            proc = subprocess.run([compiler, *flags, "-o", str(out), str(src)], capture_output=True, timeout=120)
            error = proc.stderr.decode("utf-8", "replace").strip()[-300:] if proc.returncode else ""
            if not proc.returncode and _hook_program_runs(out):
                break
            error = error or f"the program built with {' '.join(flags)} does not run"
        else:
            log.warning("could not compile the C hook (%s); using the Python hook", error)
            return None
        out.chmod(0o700)  # git runs it as the daemon's user
        out.replace(binary)
    return binary


def _python_hook() -> bytes:
    body = resources.files("gitd._hooks").joinpath("gitd_hook.py").read_text(encoding="utf-8").split("\n", 1)[1]
    # -I -S: isolated, no site; -X frozen_modules=on: the stdlib modules every start
    # needs come from the interpreter itself (one option word: a shebang takes one).
    return f"#!{sys.executable} -ISXfrozen_modules=on\n{body}".encode()


def install_hooks(data: DataDir, program: str = "auto") -> str:
    """Install the hook program as DATA/hooks/pre-receive and post-receive.

    ``program`` is "c" (compile hooks/gitd_hook.c; an error without a compiler),
    "python" (hooks/gitd_hook.py with this Python in its shebang) or "auto" (C where a
    compiler exists). Written atomically, so a push running meanwhile never sees half
    a file. Returns the kind installed.
    """
    if program not in HOOK_PROGRAMS:
        raise ConfigError(f"hooks.program must be one of {', '.join(HOOK_PROGRAMS)}, not {program!r}")
    data.hooks.mkdir(parents=True, exist_ok=True)
    binary = build_c_hook(data) if program in ("auto", "c") else None
    if program == "c" and binary is None:
        raise ConfigError("hooks.program = \"c\" but no working C compiler (cc) was found")
    content = binary.read_bytes() if binary is not None else _python_hook()
    for name in HOOK_NAMES:
        target = data.hooks / name
        if target.exists() and target.read_bytes() == content:
            continue
        tmp = data.hooks / f".{name}.{secrets.token_hex(4)}"
        tmp.write_bytes(content)
        tmp.chmod(0o700)
        tmp.replace(target)
    return "c" if binary is not None else "python"


def init_data_dir(root: Path) -> list[str]:
    """Create whatever is missing under ``root``; returns what was done, line by line."""
    import asyncssh

    data = DataDir(root)
    done: list[str] = []
    fresh = is_empty_or_missing(root)
    root.mkdir(parents=True, exist_ok=True)
    if fresh:  # a new data directory is its owner's only (see gitd/datamode.py)
        root.chmod(0o700)
    for sub in (data.repos, data.lfs, data.tmp, data.run):
        sub.mkdir(parents=True, exist_ok=True)
    data.run.chmod(0o700)
    if not data.config_file.exists():
        data.config_file.write_text(default_config_text(), encoding="utf-8")
        done.append(f"wrote {data.config_file}")
    if not data.secret_key_file.exists():
        _write_private(data.secret_key_file, secrets.token_bytes(32))
        done.append(f"created internal secret {data.secret_key_file}")
    if not data.ssh_host_key.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="gitd host key")
        _write_private(data.ssh_host_key, key.export_private_key("openssh"))
        data.ssh_host_key.with_suffix(".pub").write_bytes(key.export_public_key("openssh"))
        done.append(f"created SSH host key {data.ssh_host_key}")
    created_db = not data.db_file.exists()
    store = Store(data.db_file)
    try:
        store.migrate()
    finally:
        store.close()
    if created_db:
        done.append(f"created database {data.db_file}")
    install_hooks(data, Config.load(data.config_file).get_str("hooks.program"))
    return done
