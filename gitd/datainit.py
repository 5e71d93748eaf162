"""``gitd init``: create (or complete) a data directory without ever destroying data."""

from __future__ import annotations

import os
import secrets
import sys
from importlib import resources
from pathlib import Path

from gitd.config import default_config_text
from gitd.paths import DataDir
from gitd.store import Store

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


def install_hooks(data: DataDir) -> None:
    """Install the hook programs into DATA/hooks: pre-receive is gitd_hook.py with this
    Python in its shebang, post-receive a small shell script.

    Written atomically, so a push running meanwhile never sees half a file.
    """
    hooks = resources.files("gitd._hooks")
    body = hooks.joinpath("gitd_hook.py").read_text(encoding="utf-8").split("\n", 1)[1]
    programs = {
        # -I -S: isolated, no site; -X frozen_modules=on: the stdlib modules every start
        # needs come from the interpreter itself (one option word: a shebang takes one).
        "pre-receive": f"#!{sys.executable} -ISXfrozen_modules=on\n{body}",
        "post-receive": hooks.joinpath("post-receive").read_text(encoding="utf-8"),
    }
    data.hooks.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        program = programs[name]
        target = data.hooks / name
        if target.exists() and target.read_text(encoding="utf-8") == program:
            continue
        tmp = data.hooks / f".{name}.{secrets.token_hex(4)}"
        tmp.write_text(program, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(target)


def init_data_dir(root: Path) -> list[str]:
    """Create whatever is missing under ``root``; returns what was done, line by line."""
    import asyncssh

    data = DataDir(root)
    done: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    for sub in (data.repos, data.lfs, data.tmp, data.run, data.pushes):
        sub.mkdir(parents=True, exist_ok=True)
    data.run.chmod(0o700)
    data.pushes.chmod(0o700)
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
    install_hooks(data)
    return done
