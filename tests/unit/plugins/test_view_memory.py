"""``RepoView.diff`` lists changes without reading file contents: a push of a large file
outside Git LFS must not make every plugin's post-receive job load it into memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_regression_diff_does_not_load_the_blobs_it_lists(tmp_path):
    # In a fresh interpreter: peak RSS is per process and never goes down.
    script = textwrap.dedent("""
        import resource, sys
        import pygit2
        from gitd.plugins.events import RepoInfo
        from gitd.plugins.view import RepoView

        path = sys.argv[1]
        repo = pygit2.init_repository(path, bare=True)
        with open(path + "/big", "wb") as f:        # 200 MiB that do not compress
            for _ in range(200):
                f.write(__import__("os").urandom(1 << 20))
        blob = repo.create_blob_fromdisk(path + "/big")
        tb = repo.TreeBuilder()
        tb.insert("weights.bin", blob, pygit2.GIT_FILEMODE_BLOB)
        sig = pygit2.Signature("a", "a@example.com")
        commit = repo.create_commit("refs/heads/main", sig, sig, "big", tb.write(), [])
        del blob, tb
        repo = pygit2.Repository(path)
        view = RepoView(RepoInfo(1, "a", "b", "model", False, __import__("pathlib").Path(path)), repo, None)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (change,) = view.diff(None, str(commit))
        assert change.path == "weights.bin" and change.new.size == 200 << 20, change
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grown)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r.git")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    grown_kib = int(out.stdout.strip())
    assert grown_kib < 50 * 1024, f"diff grew the process by {grown_kib} KiB for a 200 MiB file"
