"""Long fuzz runs of the parsers of untrusted input (the targets of tests/fuzz/targets.py).

    python bench/fuzz.py                      # every target, 300 s each
    python bench/fuzz.py --seconds 60 pktline hub_commit
    python bench/fuzz.py --engine hypothesis  # without atheris

Each target runs in a process of its own, with atheris (coverage-guided libFuzzer, the
``fuzz`` extra) when it is installed, else with hypothesis (the CI test's strategies, for
as long as asked). atheris starts from the seed corpus (tests/fuzz/seeds.py) and keeps
what it learns in bench/.work/fuzz/corpus/<target>, so later runs start further on.

A crash is recorded and the run goes on: its input is saved under
bench/.work/fuzz/crashes/<target>/ and its kind (exception and innermost gitd frame)
counted once. A hang past ``--timeout`` seconds ends atheris's run and counts as a crash.
Prints per target: executions, run time, executions per second, crashes, peak RSS;
writes the same to bench/results/fuzz-<time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "fuzz"
RESULTS = ROOT / "bench" / "results"
TARGETS = ["pktline", "lfs_transfer", "ssh_command", "hook_body", "hook_http", "hub_commit", "lfs_batch", "lfs_locks"]


def crash_kind(exc: BaseException) -> str:
    """The exception's type and the innermost frame in gitd (or the target) that it passed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/gitd/" in f.filename or "/fuzz/" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


class Recorder:
    """Runs one target on inputs, counting them and recording each kind of crash once."""

    def __init__(self, name: str):
        from tests.fuzz.targets import run

        self.name = name
        self.run = run
        self.executions = 0
        self.crashes: dict[str, str] = {}  # kind -> saved input
        self.folder = WORK / "crashes" / name

    def __call__(self, data: bytes) -> None:
        self.executions += 1
        try:
            self.run(self.name, data)
        except Exception as exc:
            kind = crash_kind(exc)
            if kind not in self.crashes:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"crash-{hashlib.sha1(data).hexdigest()[:16]}"
                path.write_bytes(data)
                self.crashes[kind] = str(path.relative_to(ROOT))
                print(f"CRASH {self.name}: {kind}: {exc!s:.200} (input: {path})", file=sys.stderr, flush=True)
                with (WORK / f"{self.name}.crashes.jsonl").open("a") as f:
                    f.write(json.dumps({"kind": kind, "message": f"{exc!s:.200}", "input": self.crashes[kind]}) + "\n")


def worker_atheris(name: str, seconds: int, timeout: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["gitd"]):
        from tests.fuzz.seeds import write_corpus, write_dictionary
        recorder = Recorder(name)
    corpus = write_corpus(WORK / "corpus", name)
    args = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-timeout={timeout}", "-rss_limit_mb=2048",
            "-max_len=65536", "-print_final_stats=1", f"-dict={write_dictionary(WORK, name)}",
            f"-artifact_prefix={WORK / 'crashes' / name}/"]
    (WORK / "crashes" / name).mkdir(parents=True, exist_ok=True)
    atheris.Setup(args, recorder)
    atheris.Fuzz()


def worker_hypothesis(name: str, seconds: int) -> None:
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.strategies import inputs

    recorder = Recorder(name)
    deadline = time.monotonic() + seconds
    strategy = inputs(name)

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def batch(data: bytes) -> None:
        if time.monotonic() < deadline:
            recorder(data)

    while time.monotonic() < deadline:
        batch()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"stat::number_of_executed_units: {recorder.executions}\nstat::peak_rss_mb: {peak}", file=sys.stderr)


def run_target(name: str, engine: str, seconds: int, timeout: int) -> dict[str, object]:
    (WORK / f"{name}.crashes.jsonl").unlink(missing_ok=True)  # this run's crashes only
    cmd = [sys.executable, __file__, "--worker", name, "--engine", engine, "--seconds", str(seconds),
           "--timeout", str(timeout)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace",
                          timeout=seconds * 2 + 120)
    wall = time.monotonic() - start
    log = proc.stdout + proc.stderr
    (WORK / f"{name}.{engine}.log").write_text(log[-200_000:])
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", log))
    crashes = []
    if (WORK / f"{name}.crashes.jsonl").exists():
        crashes = [json.loads(line) for line in (WORK / f"{name}.crashes.jsonl").read_text().splitlines()]
    if proc.returncode != 0:  # libFuzzer stopped: a hang (-timeout), out of memory, or a crash outside a target
        crashes.append({"kind": f"the run ended with status {proc.returncode} (hang, memory or crash)",
                        "input": f"bench/.work/fuzz/{name}.{engine}.log"})
    executions = int(stats.get("number_of_executed_units", 0))
    coverage = re.findall(r"\bcov: (\d+) ft: (\d+) corp: (\d+)", log)  # atheris: edges, features, corpus size
    return {"target": name, "engine": engine, "seconds": round(wall, 1), "executions": executions,
            "exec_per_s": round(executions / wall) if wall else 0, "crashes": len(crashes),
            "crash_kinds": crashes, "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
            "coverage": dict(zip(("edges", "features", "corpus"), map(int, coverage[-1]), strict=True))
            if coverage else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"targets to run (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--seconds", type=int, default=300, help="run time per target")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis", "both"], default="auto",
                        help="auto: atheris when installed, else hypothesis; both: one after the other")
    parser.add_argument("--timeout", type=int, default=60,
                        help="seconds after which atheris takes an input for a hang and stops (the targets "
                             "themselves record an input over 5 s twice as a crash and go on)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "hypothesis"
    WORK.mkdir(parents=True, exist_ok=True)
    if args.worker:
        if engine == "atheris":
            worker_atheris(args.worker, args.seconds, args.timeout)
        else:
            worker_hypothesis(args.worker, args.seconds)
        return
    engines = ["atheris", "hypothesis"] if engine == "both" else [engine]
    results = []
    print(f"{'target':<14}{'engine':<12}{'seconds':>9}{'executions':>12}{'exec/s':>9}{'crashes':>9}{'rss MB':>8}")
    for name in args.targets or TARGETS:
        for one in engines:
            r = run_target(name, one, args.seconds, args.timeout)
            results.append(r)
            print(f"{name:<14}{one:<12}{r['seconds']:>9}{r['executions']:>12}{r['exec_per_s']:>9}{r['crashes']:>9}"
                  f"{r['peak_rss_mb']:>8}", flush=True)
            for crash in r["crash_kinds"]:  # type: ignore[union-attr]
                print(f"    {crash['kind']}: {crash.get('message', '')[:100]}  [{crash['input']}]", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
