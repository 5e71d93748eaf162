"""The local runtime: each job trains in a supervised subprocess on the daemon's host.

``kick()`` starts pending jobs while fewer than ``max_running`` run. A job runs ``train.py``
(this package's training program) under the plugin API's ``spawn``: its own session, an
environment built from scratch (HF_ENDPOINT at gitd, three tokens from
``context.access_token``: read the model, read the dataset, write the target, each pinned
to its repository and living ``timeout`` seconds), its output in a bounded log. A thread
per job copies ``progress.json`` into the job's row and, when the process ends, sets the
outcome: succeeded (the program pushed its one commit), failed (with the program's own
reason, or how it died), or cancelled. Downloads and outputs are removed afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gitd.plugin_api import BoundedLog, exit_reason, limited_argv, spawn, stop_group

from .settings import Settings
from .state import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Job, JobStore

log = logging.getLogger("gitd.plugins.finetune")

TRAIN = Path(__file__).with_name("train.py")
POLL = 0.5


class LocalJobs:
    def __init__(self, root: Path, settings: Settings, jobs: JobStore, tokens: Callable[[Job], dict[str, str]],
                 landed: Callable[[Job], str | None]):
        self.root = root
        self.landed = landed  # job -> the commit its target repository holds (None: none yet)
        self.settings = settings
        self.jobs = jobs
        self.tokens = tokens  # job -> {"GITD_MODEL_TOKEN": ..., "GITD_DATASET_TOKEN": ..., "GITD_TARGET_TOKEN": ...}
        for d in (root, root / "jobs", root / "logs"):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._closing = False

    def log(self, job_id: int) -> BoundedLog:
        return BoundedLog(self.root / "logs" / f"{job_id}.log", self.settings.max_log)

    def job_dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(job_id)

    # -- scheduling ------------------------------------------------------------------------------
    def kick(self) -> None:
        """Start pending jobs, oldest first, while a slot is free."""
        with self._lock:
            if self._closing:
                return
            free = self.settings.max_running - len(self._running)
            if free <= 0:
                return
            for job in self.jobs.with_status(PENDING)[:free]:
                if not self.jobs.update(job.id, when=(PENDING,), status=RUNNING, phase="starting", started=time.time(),
                                        reason=None, step=0, total=0, loss=None, result_commit=None, cancel=0):
                    continue  # cancelled meanwhile
                run = Running(self, job)
                self._running[job.id] = run
                run.thread.start()

    def _done(self, job_id: int) -> None:
        with self._lock:
            self._running.pop(job_id, None)
        self.kick()

    def cancel(self, job_id: int) -> bool:
        """Cancel a job this process runs or that waits; False when it had finished."""
        if self.jobs.update(job_id, when=(PENDING,), status=CANCELLED, reason="cancelled before it started",
                            finished=time.time()):
            return True
        with self._lock:
            run = self._running.get(job_id)
        if run is None:
            return False
        run.cancel()
        return True

    def recover(self) -> None:
        """The daemon starts: a job marked running has no process any more (the daemon stopped
        under it); it failed, and its target got no commit from it."""
        for job in self.jobs.with_status(RUNNING):
            if job.runtime == "local" and job.id not in self._running:
                self.jobs.update(job.id, when=(RUNNING,), status=FAILED, finished=time.time(),
                                 reason="the daemon stopped while the job ran; start it again")
        self.kick()

    def shutdown(self) -> None:
        with self._lock:
            self._closing = True
            runs = list(self._running.values())
        for run in runs:
            run.stop("the daemon stopped while the job ran; start it again")
        for run in runs:
            run.thread.join(10)


class Running:
    """One job's process and the thread that watches it."""

    def __init__(self, owner: LocalJobs, job: Job):
        self.owner = owner
        self.job = job
        self.proc: subprocess.Popen | None = None
        self._why_stopped: str | None = None
        self._cancelled = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"gitd-finetune-{job.id}", daemon=True)

    def cancel(self) -> None:
        self._cancelled = True
        self.stop("cancelled")

    def stop(self, why: str) -> None:
        self._why_stopped = self._why_stopped or why
        self._stop.set()
        if self.proc is not None:
            stop_group(self.proc, grace=3.0)

    def _spec(self, work: Path) -> Path:
        job = self.job
        spec = {"endpoint": job.endpoint, "model": job.model, "model_revision": job.model_revision,
                "dataset": job.dataset, "dataset_revision": job.dataset_revision, "target": job.target,
                "state_dir": str(work), **job.config}
        path = work / "spec.json"
        path.write_text(json.dumps(spec))
        return path

    def _env(self, work: Path, python: str) -> dict[str, str]:
        env = {"PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work),
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "HF_HOME": str(work / "hf"),
               "HF_ENDPOINT": self.job.endpoint.rstrip("/"), "HF_HUB_DISABLE_XET": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
        if self.owner.settings.threads:
            env["OMP_NUM_THREADS"] = str(self.owner.settings.threads)
        env.update(self.owner.tokens(self.job))
        return env

    def _run(self) -> None:
        owner, job = self.owner, self.job
        out = owner.log(job.id)
        out.clear()
        work = owner.job_dir(job.id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700, parents=True)
        try:
            python = owner.settings.interpreter or sys.executable
            out.line(f"job {job.id}: {job.config['method']} fine-tune of {job.model}@{job.model_revision[:12]} "
                     f"on {job.dataset}@{job.dataset_revision[:12]} into {job.target}")
            try:
                argv = limited_argv([python, str(TRAIN), str(self._spec(work))], memory=int(owner.settings.memory),
                                    cpu=0, nofile=0, nproc=0)
                self.proc = spawn(argv, cwd=work, env=self._env(work, python), log=out,
                                  name=f"gitd-finetune-log-{job.id}")
            except OSError as exc:
                self._finish(FAILED, f"the job cannot start: {exc}", out)
                return
            owner.jobs.update(job.id, when=(RUNNING,), pid=self.proc.pid)
            if self._stop.is_set():  # cancelled while starting
                stop_group(self.proc, grace=1.0)
            code = self._watch(work)
            self._outcome(code, work, out)
        except Exception as exc:  # the daemon's side failed (a token, the disk): say so on the job
            log.exception("finetune job %d", job.id)
            if self.proc is not None:
                stop_group(self.proc, grace=1.0)
            self._finish(FAILED, f"the job's supervisor failed: {exc}", out)
        finally:
            for part in ("model", "dataset", "output", "hf"):
                shutil.rmtree(work / part, ignore_errors=True)
            owner._done(job.id)

    def _watch(self, work: Path) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + float(self.owner.settings.timeout)
        seen: dict | None = None
        while True:
            try:
                code = self.proc.wait(POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            seen = self._progress(work, seen)
            if time.monotonic() > deadline:
                self.stop(f"the job ran longer than {float(self.owner.settings.timeout):.0f}s")
        self._progress(work, seen)
        return code

    def _progress(self, work: Path, seen: dict | None) -> dict | None:
        try:
            state = json.loads((work / "progress.json").read_text())
        except (OSError, ValueError):
            return seen
        if state != seen and state.get("phase") != "done":
            self.owner.jobs.update(self.job.id, when=(RUNNING,), phase=state.get("phase"),
                                   step=int(state.get("step") or 0), total=int(state.get("total") or 0),
                                   loss=state.get("loss"))
        return state

    def _outcome(self, code: int, work: Path, out: BoundedLog) -> None:
        try:
            state = json.loads((work / "progress.json").read_text())
        except (OSError, ValueError):
            state = {}
        # What decides success is the target's commit, whatever the exit: a cancel or a kill that
        # came after the push (or during it, once the commit landed) leaves a finished job.
        commit = self.owner.landed(self.job)
        if commit is not None:
            out.line(f"succeeded: {self.job.target}@{commit[:12]}")
            self.owner.jobs.update(self.job.id, when=(RUNNING,), status=SUCCEEDED, phase="done", result_commit=commit,
                                   step=int(state.get("step") or 0), loss=state.get("loss"), finished=time.time(),
                                   pid=None, reason=None)
            return
        if self._cancelled:
            self._finish(CANCELLED, "cancelled", out)
            return
        if self._why_stopped:
            self._finish(FAILED, self._why_stopped, out)
            return
        try:
            reason = json.loads((work / "error.json").read_text())["reason"]
        except (OSError, ValueError, KeyError, TypeError):
            tail = out.tail(600).decode("utf-8", "replace").strip().splitlines()
            reason = exit_reason(code, "the training process") + (f"; last output: {tail[-1]}" if tail else "")
        self._finish(FAILED, str(reason)[:2000], out)

    def _finish(self, status: str, reason: str, out: BoundedLog) -> None:
        out.line(f"{status}: {reason}")
        self.owner.jobs.update(self.job.id, when=(RUNNING,), status=status, reason=reason, finished=time.time(),
                               pid=None)
