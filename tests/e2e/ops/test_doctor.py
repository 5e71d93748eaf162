"""Issue #20 §7: ``gitd doctor`` checks the database against the disk on the inconsistent
copies a ``cp -a`` of a running data directory gives (a repository row without its
directory, a directory without a row, refs to missing objects, LFS objects recorded but
absent, repositories pointing at another data directory's hooks), and ``--repair`` repairs
what is safe to repair, after which the repositories answer clone and push again."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.e2e.rawhttp import basic, request
from tests.lfs_support import LfsClient, sha256
from tests.support import Daemon, Git


def findings(out: str, state: str = "problem") -> set[tuple[str, str]]:
    """(check, subject) of every 'problem:' (or 'repaired:') line."""
    found = set()
    for line in out.splitlines():
        if line.startswith(f"{state}: "):
            check, subject = line[len(state) + 2:].split(": ", 2)[:2]
            found.add((check, subject))
    return found


def test_regression_doctor_finds_and_repairs_what_a_copy_breaks(make_daemon, git: Git, tmp_path):
    d = make_daemon()
    user, token = d.user()
    lost, broken, kept = d.repo(user), d.repo(user), d.repo(user)
    for repo in (lost, broken, kept):
        work = git.init_work(tmp_path / repo.replace("/", "-"), {"a.txt": repo})
        git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    data = os.urandom(10_000)
    assert LfsClient(d, kept, token).upload(data).status == 200
    d.stop()

    # A copy of the data directory taken while the daemon ran, with what such copies lack.
    copy = tmp_path / "copy" / "data"
    copy.parent.mkdir()
    subprocess.run(["cp", "-a", str(d.data), str(copy)], check=True)
    moved = Daemon(data=copy, log_path=tmp_path / "copy" / "gitd.log")
    shutil.rmtree(moved.repo_path(lost))  # a row without its directory
    stray = copy / "repos" / "ff" / "9999.git"
    shutil.copytree(moved.repo_path(kept), stray)  # a directory without a row
    for pack in (moved.repo_path(broken) / "objects" / "pack").glob("*"):
        pack.unlink()  # refs to objects that are not there
    oid = sha256(data)
    (copy / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).unlink()  # recorded, not stored

    moved.start()
    try:
        clone = git("clone", moved.repo_url(lost, token=token), str(tmp_path / "c0"), check=False)
        assert clone.returncode != 0  # the repository cannot answer; it says why, not "500"
        reply = request(moved.url, "GET", f"/{lost}.git/info/refs?service=git-upload-pack", headers=basic(token))
        assert reply.status == 503 and b"data is missing" in reply.body
        assert "run 'gitd doctor'" in moved.log()
        code, out, _ = moved.cli("doctor", check=False)
        assert code == 1
        problems = findings(out)
        assert {check for check, _ in problems} == {"repository-missing", "repository-unrecorded", "refs-broken",
                                                    "hooks-path", "lfs-missing"}, out
        assert ("repository-missing", f"model {lost}") in problems and ("lfs-missing", oid) in problems
        assert ("repository-unrecorded", str(stray)) in problems and ("refs-broken", f"model {broken}") in problems
        assert {s for c, s in problems if c == "hooks-path"} == {f"model {broken}", f"model {kept}"}  # copied ones

        code, out, _ = moved.cli("doctor", "--repair", check=False)
        assert code == 1  # refs to missing objects cannot be repaired: only a backup brings them back
        assert findings(out, "repaired") == problems - {("refs-broken", f"model {broken}")}, out
        assert findings(out) == {("refs-broken", f"model {broken}")}
        assert (copy / "lost+found" / "ff-9999.git").is_dir() and not stray.exists()

        # The recreated repository answers clone and push again; the lost LFS object answers 410.
        git("clone", "-q", moved.repo_url(lost, token=token), str(tmp_path / "c1"))
        work = git.init_work(tmp_path / "again", {"b.txt": "again\n"})
        git("push", "-q", moved.repo_url(lost, token=token), "main", cwd=work)
        git("clone", "-q", moved.repo_url(kept, token=token), str(tmp_path / "c2"))
        answer = LfsClient(moved, kept, token).batch("download", [(oid, len(data))])
        assert answer.json()["objects"][0]["error"]["code"] == 410
        assert request(moved.url, "GET", f"/api/models/{kept}", headers=basic(token)).status == 200
        code, out, _ = moved.cli("doctor", check=False)
        assert findings(out) == {("refs-broken", f"model {broken}")}
    finally:
        moved.stop()
