"""The fine-tune plugin: a model repository + a dataset repository + a config -> a job that trains
and pushes the result to a new model repository, whose card names its base model and dataset
(so the metadata plugin records the lineage).

Routes (``/api/plugins/finetune``, signed in): ``POST /jobs`` (create), ``GET /jobs`` (yours),
``GET /jobs/{id}``, ``GET /jobs/{id}/logs``, ``POST /jobs/{id}/cancel``, ``POST /jobs/{id}/start``
(run a failed or cancelled job again); CSGHub's finetune routes (csghub-cli ``finetune
list|start|stop``) through the hooks ``gitd_run_instances`` and ``gitd_run_instance`` (kind
``finetune``). Commands: ``gitd finetune create|list|status|logs|cancel|start``.
Runtimes: ``local`` (``local.py``) and ``kubernetes`` (``kube.py``, a ``FinetuneJob`` resource the
operator in ``operator/`` turns into a Job).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitd.plugin_api import (
    CliCommand,
    HTTPError,
    PluginContext,
    PluginError,
    PluginRequest,
    RepoInfo,
    Response,
    Route,
    TaskEvent,
    hookimpl,
)

from .local import LocalJobs
from .settings import Settings
from .state import ACTIVE, CANCELLED, FAILED, FINISHED, PENDING, SUCCEEDED, Job, JobStore
from .submit import pin

if TYPE_CHECKING:
    from .kube import KubernetesJobs

TOKENS = ("GITD_MODEL_TOKEN", "GITD_DATASET_TOKEN", "GITD_TARGET_TOKEN")


class FinetunePlugin:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(Settings)
        self.settings.validate()

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.context.storage)

    @cached_property
    def local(self) -> LocalJobs:
        root = Path(self.settings.work_dir) if self.settings.work_dir else self.context.cache_dir
        return LocalJobs(root, self.settings, self.jobs, self.tokens, self.landed)

    @cached_property
    def kube(self) -> KubernetesJobs:
        from .kube import KubernetesJobs

        return KubernetesJobs(self.settings, self.jobs, self.tokens)

    def tokens(self, job: Job) -> dict[str, str]:
        """The job's three credentials, each pinned to its repository, living the job's timeout."""
        ttl = float(self.settings.timeout) + 600
        repos = [self._repo(job.model, job.model_id, "model"), self._repo(job.dataset, job.dataset_id, "dataset"),
                 self._repo(job.target, job.target_id, "model")]
        levels = ("read", "read", "write")
        return {name: self.context.access_token(repo, level, ttl) for name, repo, level in zip(TOKENS, repos, levels,
                                                                                             strict=True)}

    def landed(self, job: Job) -> str | None:
        """The commit a job pushed to its target (a job's target gets exactly one commit, or none)."""
        try:
            return self.context.view(self._repo(job.target, job.target_id, "model")).head()
        except PluginError:  # the target was deleted: nothing of the job's is there
            return None

    def _repo(self, name: str, repo_id: int, repo_type: str) -> RepoInfo:
        repo = self.context.find_repo(name, repo_type)
        if repo is None or repo.id != repo_id:
            raise PluginError(f"the {repo_type} repository {name} is gone")
        return repo

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        if event.task == "kick" and self.settings.runtime == "local":
            self.local.kick()
        elif event.task == "launch":
            job = self.jobs.get(int(event.payload["job"]))
            if job is not None and job.status == PENDING:
                self.launch(job)
        elif event.task == "cancel":
            self._cancel(int(event.payload["job"]))

    @hookimpl
    def gitd_daemon_started(self) -> None:
        if self.settings.runtime == "local":
            self.local.recover()

    @hookimpl
    def gitd_daemon_stopping(self) -> None:
        if "local" in self.__dict__:
            self.local.shutdown()

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo) -> None:
        column = {"model": ("model", "target"), "dataset": ("dataset",)}.get(repo.type, ())
        for name in column:
            self.context.storage.execute(f"UPDATE {{prefix}}jobs SET {name} = ? WHERE {name}_id = ?",
                                         [repo.full_name, repo.id])

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [
            Route("POST", "/jobs", self.post_job, signed_in=True, summary="create a fine-tune job"),
            Route("GET", "/jobs", self.get_jobs, signed_in=True, summary="your fine-tune jobs"),
            Route("GET", "/jobs/{id}", self.get_job, signed_in=True, summary="a job: status, progress, outcome"),
            Route("GET", "/jobs/{id}/logs", self.get_logs, signed_in=True, summary="a job's log (its tail)"),
            Route("POST", "/jobs/{id}/cancel", self.post_cancel, signed_in=True, summary="cancel a job"),
            Route("POST", "/jobs/{id}/start", self.post_start, signed_in=True,
                  summary="run a failed or cancelled job again"),
        ]

    @hookimpl
    def gitd_cli_commands(self) -> list:
        return [
            CliCommand("finetune", "create", "queue a fine-tune job (the daemon runs it)", self.cli_create,
                       _create_args),
            CliCommand("finetune", "list", "fine-tune jobs and their status", self.cli_list, _list_args),
            CliCommand("finetune", "status", "a job's status, progress and outcome", self.cli_status, _id_arg),
            CliCommand("finetune", "logs", "a job's log", self.cli_logs, _id_arg),
            CliCommand("finetune", "cancel", "cancel a job", self.cli_cancel, _id_arg),
            CliCommand("finetune", "start", "run a failed or cancelled job again", self.cli_start, _id_arg),
        ]

    # -- jobs ----------------------------------------------------------------------------------
    def create(self, body: Any, owner: str, lookup: Any, endpoint: str, *, any_namespace: bool = False) -> Job:
        pinned = pin(self.context, lookup, body, owner, any_namespace=any_namespace)
        if not endpoint:
            raise HTTPError(400, "set plugins.finetune.endpoint: the URL jobs reach gitd at")
        try:
            target = self.context.create_repo(pinned.target, "model", private=pinned.private)
        except Exception as exc:  # a bad name, a namespace that does not exist, a race for the name
            raise HTTPError(getattr(exc, "status", 400), f"cannot create {pinned.target}: "
                            f"{getattr(exc, 'message', exc)}") from None
        return self.jobs.add(owner=owner, model=pinned.model.full_name, model_id=pinned.model.id,
                             model_revision=pinned.model_revision, dataset=pinned.dataset.full_name,
                             dataset_id=pinned.dataset.id, dataset_revision=pinned.dataset_revision,
                             target=target.full_name, target_id=target.id, config=pinned.config.as_dict(),
                             endpoint=endpoint, status=PENDING, runtime=self.settings.runtime)

    def launch(self, job: Job) -> None:
        """Run a pending job (in the daemon): locally when a slot is free, or as a resource."""
        if self.settings.runtime == "kubernetes":
            self.kube.submit(job)
        else:
            self.local.kick()

    def current(self, job: Job) -> Job:
        if job.runtime == "kubernetes" and job.status in ACTIVE and self.settings.runtime == "kubernetes":
            try:
                return self.kube.refresh(job)
            except Exception as exc:  # the cluster unreachable: answer what is known
                self.context.log.warning("finetune job %d: cannot read its resource: %s", job.id, exc)
        return job

    def _cancel(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.status in FINISHED:
            return
        if job.runtime == "kubernetes":
            self.kube.cancel(job)
        else:
            self.local.cancel(job_id)

    def restart(self, job: Job) -> Job:
        commit = self.landed(job) if job.status in (FAILED, CANCELLED) else None
        if commit is not None:  # its push landed after all (the daemon stopped as it pushed): it succeeded
            self.jobs.update(job.id, when=(FAILED, CANCELLED), status=SUCCEEDED, result_commit=commit, reason=None)
            job = self.jobs.get(job.id) or job
        if job.status == SUCCEEDED:
            raise HTTPError(409, f"job {job.id} succeeded already: its model is {job.target}")
        if job.status in (FAILED, CANCELLED):
            self.jobs.update(job.id, when=(FAILED, CANCELLED), status=PENDING, reason=None, phase=None, step=0,
                             total=0, loss=None, started=None, finished=None, cancel=0)
        return self.jobs.get(job.id) or job

    # -- HTTP ----------------------------------------------------------------------------------
    def _mine(self, request: PluginRequest, job_id: str) -> Job:
        job = self.jobs.get(int(job_id)) if job_id.isdigit() and len(job_id) < 19 else None
        if job is None or job.owner != request.user:
            raise HTTPError(404, f"fine-tune job {job_id[:40]} not found")
        return job

    def post_job(self, request: PluginRequest) -> Response:
        assert request.user is not None
        job = self.create(request.json(), request.user, request.repository,
                          self.settings.endpoint or request.base_url)
        self.launch(job)
        return Response(self.current(self.jobs.get(job.id) or job).public(), status=201)

    def get_jobs(self, request: PluginRequest) -> list[dict]:
        assert request.user is not None
        return [self.current(job).public() for job in self.jobs.of_owner(request.user)]

    def get_job(self, request: PluginRequest) -> dict:
        return self.current(self._mine(request, request.params["id"])).public()

    def get_logs(self, request: PluginRequest) -> Response:
        job = self._mine(request, request.params["id"])
        if job.runtime == "kubernetes":
            return Response(self.kube.logs(job), content_type="text/plain")
        return Response(self.local.log(job.id).tail(), content_type="text/plain")

    def post_cancel(self, request: PluginRequest) -> dict:
        job = self._mine(request, request.params["id"])
        if job.status in FINISHED:
            raise HTTPError(409, f"job {job.id} has finished ({job.status})")
        self._cancel(job.id)
        return (self.jobs.get(job.id) or job).public()

    def post_start(self, request: PluginRequest) -> dict:
        job = self.restart(self._mine(request, request.params["id"]))
        self.launch(job)
        return self.current(self.jobs.get(job.id) or job).public()

    # -- CSGHub's finetune instances (csghub-cli finetune list/start/stop) ----------------------
    @hookimpl
    def gitd_run_instances(self, kind: str, user: str) -> list[dict] | None:
        if kind != "finetune":
            return None
        return [_csghub(self.current(job)) for job in self.jobs.of_owner(user)]

    @hookimpl
    def gitd_run_instance(self, kind: str, repo: RepoInfo, instance: str, action: str, user: str) -> dict | None:
        """A job of ``user``'s that fine-tunes ``repo``: ``stop`` cancels it, ``start`` runs a
        failed or cancelled one again. Anyone else's job is not there (None: 404)."""
        job = self.jobs.get(int(instance)) if kind == "finetune" and instance.isdigit() and len(instance) < 19 else None
        if job is None or job.owner != user or job.model_id != repo.id:
            return None
        if action == "stop":
            if job.status not in FINISHED:
                self._cancel(job.id)
        elif action == "start":
            job = self.restart(job)
            self.launch(job)
        return _csghub(self.current(self.jobs.get(job.id) or job))

    # -- command line --------------------------------------------------------------------------
    def _job(self, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise PluginError(f"no fine-tune job {job_id}")
        return job

    def cli_create(self, args: argparse.Namespace) -> int:
        def lookup(name: str, repo_type: str) -> RepoInfo:
            found = self.context.find_repo(name, repo_type)
            if found is None:
                raise HTTPError(404, f"{repo_type} repository {name} not found")
            return found

        body: dict[str, Any] = {"model": args.model, "dataset": args.dataset, "config": {
            k: v for k, v in (("method", args.method), ("epochs", args.epochs), ("learning_rate", args.learning_rate),
                              ("max_steps", args.max_steps), ("text_column", args.text_column),
                              ("batch_size", args.batch_size)) if v is not None}}
        for key in ("revision", "dataset_revision", "target"):
            if getattr(args, key):
                body[key] = getattr(args, key)
        if args.private is not None:
            body["private"] = args.private
        owner = args.owner or (body.get("target") or args.model).split("/")[0]
        try:
            job = self.create(body, owner, lookup, args.endpoint or self.settings.endpoint, any_namespace=True)
        except HTTPError as exc:
            raise PluginError(exc.message) from None
        self.context.submit(None, "kick" if self.settings.runtime == "local" else "launch", {"job": job.id},
                            key=f"kick:{job.id}")
        print(f"job {job.id}: {job.model} + {job.dataset} -> {job.target} ({job.status})")
        return 0

    def cli_list(self, args: argparse.Namespace) -> int:
        for job in (self.jobs.of_owner(args.owner) if args.owner else self.jobs.all()):
            loss = "-" if job.loss is None else f"{job.loss:.4f}"
            print(f"{job.id}\t{job.status}\t{job.owner}\t{job.model}\t{job.dataset}\t{job.target}\t"
                  f"{job.step}/{job.total}\t{loss}\t{job.reason or ''}")
        return 0

    def cli_status(self, args: argparse.Namespace) -> int:
        print(json.dumps(self._job(args.id).public(), indent=2))
        return 0

    def cli_logs(self, args: argparse.Namespace) -> int:
        job = self._job(args.id)
        text = self.kube.logs(job) if job.runtime == "kubernetes" else self.local.log(job.id).tail()
        sys.stdout.write(text.decode("utf-8", "replace"))
        return 0

    def cli_cancel(self, args: argparse.Namespace) -> int:
        job = self._job(args.id)
        if job.status in FINISHED:
            raise PluginError(f"job {job.id} has finished ({job.status})")
        if not self.jobs.update(job.id, when=(PENDING,), status=CANCELLED, reason="cancelled before it started"):
            self.context.submit(None, "cancel", {"job": job.id}, key=f"cancel:{job.id}:{job.started}")
            print(f"job {job.id}: cancel queued")
        else:
            print(f"job {job.id}: cancelled")
        return 0

    def cli_start(self, args: argparse.Namespace) -> int:
        try:
            job = self.restart(self._job(args.id))
        except HTTPError as exc:
            raise PluginError(exc.message) from None
        self.context.submit(None, "kick" if self.settings.runtime == "local" else "launch", {"job": job.id},
                            key=f"kick:{job.id}:{job.updated}")
        print(f"job {job.id}: {job.status}")
        return 0


def _csghub(job: Job) -> dict[str, Any]:
    """A job as csghub-cli's ``finetune list`` reads an instance."""
    return {"deploy_id": job.id, "deploy_name": job.target, "model_id": job.model, "status": job.status,
            "dataset_id": job.dataset, "reason": job.reason, "step": job.step, "total": job.total, "loss": job.loss,
            "result_model": job.target if job.status == SUCCEEDED else None, "commit": job.result_commit}


def _id_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, metavar="JOB")


def _list_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", help="only this user's jobs")


def _create_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NS/MODEL")
    parser.add_argument("dataset", metavar="NS/DATASET")
    parser.add_argument("--target", metavar="NS/NAME", help="the new model repository (default OWNER/MODEL-METHOD-N)")
    parser.add_argument("--owner", help="the user the job belongs to (default: the target's namespace)")
    parser.add_argument("--revision", help="the model's branch, tag or commit (default: its default branch)")
    parser.add_argument("--dataset-revision", dest="dataset_revision")
    parser.add_argument("--method", choices=("full", "lora"))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float)
    parser.add_argument("--max-steps", dest="max_steps", type=int)
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--text-column", dest="text_column")
    parser.add_argument("--private", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--endpoint", help="the URL the job reaches gitd at (default plugins.finetune.endpoint)")
