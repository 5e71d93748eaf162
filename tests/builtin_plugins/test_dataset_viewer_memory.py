"""The refresh job converts a split streaming: the memory of the process running it does
not grow with the size of the file (bench/dataset_viewer.py measures the daemon with 1 GB)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from gitd_plugins.dataset_viewer import DatasetViewer

from gitd.testing import LfsBytes

MIB = 1 << 20
# small blocks, row groups and DuckDB memory: what stays is the job's fixed cost, not the file's
SETTINGS = {"block_size": "256KiB", "row_group_rows": 10_000, "memory_limit": "32MiB", "threads": 1}


def csv(rows: int) -> bytes:
    lines = (f"{i},some words for row {i} and a few more,{i * 0.25},{'abc'[i % 3]}\n" for i in range(rows))
    return b"id,text,score,tag\n" + "".join(lines).encode()


def test_converting_a_large_csv_keeps_the_jobs_memory_bounded(gitd_harness, tmp_path):
    h = gitd_harness(DatasetViewer, name="datasets", settings=SETTINGS)
    small = h.repo("alice/small", type="dataset", files={"train.csv": LfsBytes(csv(50_000))})
    big = csv(2_000_000)
    size = len(big)
    assert size > 100 * MIB
    h.repo("alice/big", type="dataset", files={"train.csv": LfsBytes(big)})
    del big
    h.close()
    # In a process of its own (peak RSS is per process and never goes down): run the small
    # dataset's jobs first, so the code and pools every conversion uses are in memory, then
    # the large one's, and compare the peaks.
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from gitd.testing import PluginHarness
        from gitd_plugins.dataset_viewer import DatasetViewer

        def peak():  # KiB; the kernel's high-water mark of this process (ru_maxrss would start
            # at the forking parent's, which held the large file)
            line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
            return int(line.split()[1])

        h = PluginHarness(DatasetViewer, Path(sys.argv[1]), name="datasets", settings={SETTINGS!r})
        queue = h.parts.jobs
        while h.plugin.states.load({small.id}) is None:  # jobs run in the order they were queued
            job = queue.claim(due_by=float("inf"))
            h.parts.chain.run_job(job)
            queue.complete(job)
        before = peak()
        h.run_jobs()
        grown = peak() - before
        rows = h.http("GET", "/api/plugins/datasets/size?dataset=alice/big").json()["size"]["dataset"]["num_rows"]
        print(grown, rows)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(h.root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grown_kib, rows = map(int, out.stdout.split())
    assert rows == 2_000_000
    # with every read of the file opening a database connection (the regression in
    # tests/unit/store/test_db_threads.py) this was ~90 MiB; now ~30 MiB, mostly DuckDB's
    assert grown_kib * 1024 < size / 2.5, f"converting {size >> 20} MiB grew the job by {grown_kib >> 10} MiB"
