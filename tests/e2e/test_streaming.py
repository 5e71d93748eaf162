"""Streaming (issue 2 §4): the daemon's memory does not grow with the size of a pack.

A ~150 MB push and clone here; bench/push_rss.py does the same with 1 GB.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

PACK_MB = 152
BLOB = 8 * 1024 * 1024  # under the policy's 10 MiB blob limit


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class PeakRSS:
    """Peak resident memory of a process: the kernel's high-water mark, reset on entry,
    cross-checked by sampling VmRSS."""

    def __init__(self, pid: int):
        self.pid = pid
        self.sampled = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.hwm_reset = True
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:  # not allowed here: the 10 ms samples alone tell the peak
            self.hwm_reset = False
        self.start = _status(self.pid, "VmRSS")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.sampled = max(self.sampled, _status(self.pid, "VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(_status(self.pid, "VmHWM") if self.hwm_reset else 0, self.sampled)


@pytest.mark.slow
def test_daemon_memory_does_not_grow_with_the_pack(make_daemon, git, tmp_path):
    d = make_daemon()
    assert d.proc is not None
    d.cli("user", "add", "big")
    _, token, _ = d.cli("token", "create", "big")
    url = d.repo_url(d.repo("big", "warm"), token=token.strip())
    big_url = d.repo_url(d.repo("big", "large"), token=token.strip())

    # Warm up with a small push and clone, so imports and caches are in the baseline.
    small = git.init_work(tmp_path / "small", {"a.txt": "a\n"})
    git("push", "-q", url, "main", cwd=small)
    git("clone", "-q", "--bare", url, str(tmp_path / "small-clone.git"))

    work = tmp_path / "big"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for i in range(PACK_MB * 1024 * 1024 // BLOB):
        (work / f"shard-{i:03d}.bin").write_bytes(os.urandom(BLOB))
    git("-c", "core.compression=0", "add", ".", cwd=work)
    git("commit", "-qm", "weights", cwd=work)
    pack_size = PACK_MB * 1024 * 1024

    # pack.window=0: the client would otherwise spend ~30 s looking for deltas between
    # random blobs, which is beside the point here.
    with PeakRSS(d.proc.pid) as push:
        git("-c", "pack.compression=0", "-c", "pack.window=0", "push", "-q", big_url, "main", cwd=work)
    # The pushed pack is kept as it came (receive.unpackLimit=1): nothing is recompressed
    # into loose objects, which would make every later clone recompress it again.
    counts = dict(line.split(": ") for line in
                  git.out("--git-dir", str(d.repo_path("big/large")), "count-objects", "-v").splitlines())
    assert counts["count"] == "0" and counts["packs"] == "1"
    with PeakRSS(d.proc.pid) as clone:
        git("clone", "-q", "--bare", big_url, str(tmp_path / "big-clone.git"))
    assert git.out("--git-dir", str(tmp_path / "big-clone.git"), "rev-parse", "main") == \
        git.out("rev-parse", "HEAD", cwd=work)

    for name, m in (("push", push), ("clone", clone)):
        growth = m.peak - m.start
        print(f"{name}: RSS {m.start / 2**20:.1f} MiB -> peak {m.peak / 2**20:.1f} MiB "
              f"(+{growth / 2**20:.1f} MiB for a {pack_size / 2**20:.0f} MiB pack)")
        assert growth < pack_size / 8, f"{name}: the daemon grew by {growth / 2**20:.1f} MiB"
