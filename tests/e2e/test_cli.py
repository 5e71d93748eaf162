"""The ``gitd`` command line contract (issue 2 §2), through the installed console script."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gitd import cli
from tests.support import run_cli, unique

GITD = str(Path(sys.executable).with_name("gitd"))
TOKEN_RE = re.compile(r"^gitd_[A-Za-z0-9_-]{30,}$")


def gitd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITD_")}
    return subprocess.run([GITD, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60)


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    proc = gitd(*args, env=env)
    assert proc.returncode == 0, f"gitd {' '.join(args)} -> {proc.returncode}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "data"
    ok("init", str(root))
    return root


def test_data_dir_from_option_before_or_after_the_subcommand_or_from_the_environment(data):
    ok("--data", str(data), "user", "add", "before")
    ok("user", "add", "after", "--data", str(data))
    ok("user", "--data", str(data), "add", "between")
    ok("user", "add", "fromenv", env={"GITD_DATA": str(data)})
    ok("org", "create", "envorg", "--owner", "fromenv", env={"GITD_DATA": str(data)})
    listed = ok("user", "list", env={"GITD_DATA": str(data)})
    assert {"before", "after", "between", "fromenv"} <= {line.split()[0] for line in listed.splitlines()[1:]}
    # --data wins over GITD_DATA.
    other = data.parent / "other"
    ok("init", str(other))
    ok("--data", str(other), "user", "add", "elsewhere", env={"GITD_DATA": str(data)})
    assert "elsewhere" not in ok("user", "list", "--data", str(data))
    assert "elsewhere" in ok("user", "list", "--data", str(other))


def test_token_is_printed_alone_and_only_its_hash_is_stored(data):
    ok("--data", str(data), "user", "add", "tokuser")
    out = ok("--data", str(data), "token", "create", "tokuser", "--name", "laptop", "--scope", "read")
    assert out.endswith("\n") and out.count("\n") == 1
    token = out.strip()
    assert TOKEN_RE.match(token), out

    db = sqlite3.connect(data / "gitd.db")
    rows = db.execute("SELECT t.name, t.scope, t.token_hash FROM tokens t JOIN accounts a ON a.id = t.account_id "
                      "WHERE a.name = 'tokuser'").fetchall()
    db.close()
    assert rows == [("laptop", "read", hashlib.sha256(token.encode()).hexdigest())]
    for f in data.glob("gitd.db*"):  # the database and its WAL never hold the token itself
        assert token.encode() not in f.read_bytes()
    listed = ok("--data", str(data), "token", "list", "tokuser")
    assert "laptop" in listed and "read" in listed and token not in listed

    # Default names never collide, even after a revoke.
    ok("--data", str(data), "token", "create", "tokuser")
    ok("--data", str(data), "token", "create", "tokuser")
    ok("--data", str(data), "token", "revoke", "tokuser", "laptop")
    ok("--data", str(data), "token", "create", "tokuser")
    names = [line.split()[0] for line in ok("--data", str(data), "token", "list", "tokuser").splitlines()[1:]]
    assert sorted(names) == ["token-1", "token-2", "token-3"]


def _fingerprint(root: Path) -> dict[str, str]:
    files = ["gitd.toml", "secrets/internal.key", "ssh/ssh_host_ed25519_key", "ssh/ssh_host_ed25519_key.pub"]
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files}


def test_init_again_never_destroys_data(tmp_path):
    root = tmp_path / "data"
    first = ok("init", str(root))
    assert "created database" in first and "SSH host key fingerprint: SHA256:" in first
    assert (root / "secrets" / "internal.key").stat().st_mode & 0o077 == 0
    assert (root / "ssh" / "ssh_host_ed25519_key").stat().st_mode & 0o077 == 0
    # An operator edits the config, and the data grows.
    config = root / "gitd.toml"
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    ok("--data", str(root), "user", "add", "keeper")
    token = ok("--data", str(root), "token", "create", "keeper").strip()
    ok("--data", str(root), "repo", "create", "keeper/kept", "--private")
    before = _fingerprint(root)
    repos_before = sorted(p.relative_to(root) for p in (root / "repos").rglob("*"))

    again = ok("init", str(root))
    assert "created" not in again and "wrote" not in again
    ok("--data", str(root), "init")  # the --data form too

    assert _fingerprint(root) == before
    assert "edited by the operator" in config.read_text()
    assert sorted(p.relative_to(root) for p in (root / "repos").rglob("*")) == repos_before
    assert "keeper" in ok("--data", str(root), "user", "list")
    assert "keeper/kept" in ok("--data", str(root), "repo", "list")
    db = sqlite3.connect(root / "gitd.db")
    assert db.execute("SELECT count(*) FROM tokens WHERE token_hash = ?",
                      [hashlib.sha256(token.encode()).hexdigest()]).fetchone() == (1,)
    db.close()


@pytest.mark.parametrize(
    "args",
    [
        ["user", "add", "dup"],  # the second time
        ["user", "add", "datasets"],
        ["user", "add", "bad/name"],
        ["token", "create", "nobody-here"],
        ["token", "revoke", "dup", "no-such-token"],
        ["repo", "create", "dup/a..b"],
        ["repo", "create", "no-owner/x"],
        ["repo", "create", "justaname"],
        ["repo", "delete", "dup/missing"],
        ["org", "add-member", "no-org", "dup", "--role", "write"],
        ["serve", "--http", "127.0.0.1:notaport"],
        # argparse usage errors
        [],
        ["frobnicate"],
        ["user"],
        ["user", "add"],
        ["token", "create", "dup", "--scope", "everything"],
        ["repo", "create", "dup/x", "--type", "weights"],
        ["repo", "set", "dup/x"],
        ["org", "create", "o"],
        ["user", "list", "--no-such-flag"],
    ],
    ids=lambda a: " ".join(a) or "(nothing)",
)
def test_errors_are_one_line_on_stderr_with_nonzero_exit(data, args):
    if args == ["user", "add", "dup"]:
        ok("--data", str(data), "user", "add", "dup")
    # In-process: the same code path as the console script, without a Python start per case.
    code, out, err = run_cli(data, *args, check=False) if args else _main_in_process([])
    assert code != 0
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitd: error: "), err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [["user", "add", "datasets"], ["user", "add"], ["serve", "--http", "x:y"]])
def test_the_console_script_reports_errors_as_one_line(data, args):
    proc = gitd("--data", str(data), *args)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gitd: error: "), proc.stderr


def _main_in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_uninitialised_data_dir_is_a_one_line_error(tmp_path):
    proc = gitd("--data", str(tmp_path / "nothing"), "user", "list")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "gitd init" in proc.stderr
    assert not (tmp_path / "nothing").exists()


def test_commands_work_while_the_daemon_runs(daemon, git, tmp_path):
    db = sqlite3.connect(daemon.data / "gitd.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    name = unique("live")
    ok("--data", str(daemon.data), "user", "add", name)
    token = ok("--data", str(daemon.data), "token", "create", name).strip()
    ok("--data", str(daemon.data), "repo", "create", f"{name}/fresh", "--type", "dataset", "--private")
    # The new repository has its first commit (a dataset's .gitattributes): clone it and push on top.
    url = daemon.repo_url(f"{name}/fresh", token=token, repo_type="dataset")
    git("clone", "-q", url, str(tmp_path / "w"))
    work = tmp_path / "w"
    assert "*.png filter=lfs" in (work / ".gitattributes").read_text()
    git.commit(work, {"README.md": "hello\n"})
    git("push", url, "main", cwd=work)
    ok("--data", str(daemon.data), "repo", "set", f"{name}/fresh", "--public")
    assert git.out("rev-parse", "HEAD", cwd=work) in git.out("ls-remote", daemon.repo_url(f"{name}/fresh",
                                                                                          repo_type="dataset"))
    assert "dataset" in ok("--data", str(daemon.data), "repo", "list", "--type", "dataset")


def test_repo_create_makes_a_first_commit_and_empty_skips_it(daemon, git, tmp_path):
    owner, token = daemon.user()
    seeded, empty = f"{owner}/{unique('seeded')}", f"{owner}/{unique('empty')}"
    assert "with a first commit" in ok("--data", str(daemon.data), "repo", "create", seeded)
    assert "empty" in ok("--data", str(daemon.data), "repo", "create", empty, "--empty")
    assert git.out("ls-remote", daemon.repo_url(empty)) == ""
    log = git.out("ls-remote", daemon.repo_url(seeded))
    assert "refs/heads/main" in log and "HEAD" in log
    # A history of its own is unrelated to the first commit: git refuses the non-fast-forward
    # (nothing changes); it goes into the empty repository as it is, and into the other one once
    # merged (the policy plugin refuses a force-push to the default branch).
    work = git.init_work(tmp_path / "w", {"a.txt": "a\n"})
    refused = git("push", daemon.repo_url(seeded, token=token), "main", cwd=work, check=False)
    assert refused.returncode != 0 and b"fetch first" in refused.stderr
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("push", daemon.repo_url(empty, token=token), "main", cwd=work)
    assert f"{head}\trefs/heads/main" in git.out("ls-remote", daemon.repo_url(empty))
    git("pull", "-q", "--no-rebase", "--allow-unrelated-histories", "--no-edit", daemon.repo_url(seeded), "main",
        cwd=work)
    git("push", daemon.repo_url(seeded, token=token), "main", cwd=work)
    merged = git.out("rev-parse", "HEAD", cwd=work)
    assert f"{merged}\trefs/heads/main" in git.out("ls-remote", daemon.repo_url(seeded))
    assert sorted(p.name for p in work.iterdir() if p.name != ".git") == [".gitattributes", "a.txt"]
    # Spaces get a README whose card names the SDK.
    space = f"{owner}/{unique('space')}"
    ok("--data", str(daemon.data), "repo", "create", space, "--type", "space", "--sdk", "docker")
    git("clone", "-q", daemon.repo_url(space, repo_type="space"), str(tmp_path / "s"))
    assert "sdk: docker" in (tmp_path / "s" / "README.md").read_text()
    code, _, err = daemon.cli("repo", "create", f"{owner}/{unique('m')}", "--sdk", "docker", check=False)
    assert code != 0 and "--sdk is for spaces" in err


def test_repo_delete_removes_the_repository_and_its_data(daemon, git, tmp_path):
    owner, token = daemon.user()
    repo = daemon.repo(owner, repo_type="code")
    work = git.init_work(tmp_path / "w")
    git("push", daemon.repo_url(repo, token=token, repo_type="code"), "main", cwd=work)
    path = daemon.repo_path(repo, "code")
    assert path.is_dir()
    code, _, err = daemon.cli("repo", "delete", repo, "--type", "model", check=False)
    assert code == 1 and err.startswith("gitd: error:")  # wrong type: nothing happens
    assert path.is_dir()
    daemon.cli("repo", "delete", repo)  # the only repo of that name: no --type needed
    assert not path.exists()
    assert repo not in daemon.cli("repo", "list")[1]
    gone = git("ls-remote", daemon.repo_url(repo, token=token, repo_type="code"), check=False)
    assert gone.returncode != 0 and b"not found" in gone.stderr
    # The name can be used again, for a new, empty repository.
    daemon.cli("repo", "create", repo, "--type", "code", "--empty")
    assert git.out("ls-remote", daemon.repo_url(repo, token=token, repo_type="code")) == ""
