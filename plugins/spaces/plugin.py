"""The spaces plugin: a push to a space repository's default branch (re)starts the space.

Hooks: ``gitd_post_receive`` deploys the pushed commit (only the newest: a job whose
commit is no longer the branch's head leaves it to the next one); ``gitd_task`` runs
deploy/restart/stop requests (from the CLI); the daemon's lifecycle hooks (API 1.2)
start and stop the supervisor. Routes: the reverse proxy under the space's own URL
(``/spaces/NS/NAME/app/...``, API 1.2's ``mount="repo"``; with ``host_domain``, also at
``NAME--NS.DOMAIN``, API 1.3's ``HostRoute``), and the Hub's runtime API
(``/api/spaces/NS/NAME/runtime``, ``restart``, ``pause``, ``sleeptime``, ``logs/KIND``,
``secrets``, ``variables``). The web UI's "Running app" tab is ``web.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import sys
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitd.plugin_api import (
    CliCommand,
    HostRoute,
    HTTPError,
    PluginContext,
    PluginError,
    PluginRequest,
    PushEvent,
    RelayTarget,
    RepoInfo,
    RepoRoute,
    RepoView,
    TaskEvent,
    hookimpl,
)

from .env import SECRET, VARIABLE, EnvError, SpaceEnv
from .hosts import SpaceHosts, host_label
from .local import LocalRunner
from .logstream import LogFollower, stream, stream_lines

if TYPE_CHECKING:
    from .kube import KubernetesRuntime
from .proxy import SpaceProxy
from .settings import Settings
from .state import APP_STARTING, BUILDING, PAUSED, RUNNING, STOPPED, SpaceRow, SpaceStates

SPACE = ("space",)


class SpacesPlugin:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(Settings)
        self.settings.validate()
        self._closing = threading.Event()
        self._streams = 0

    # Made on first use: a `gitd` command that only lists commands opens nothing.
    @cached_property
    def states(self) -> SpaceStates:
        return SpaceStates(self.context.storage)

    @cached_property
    def env(self) -> SpaceEnv:
        self.states  # noqa: B018 -- its migrations create the table
        return SpaceEnv(self.context.storage, self.context.secrets)

    @cached_property
    def runner(self) -> LocalRunner:
        root = Path(self.settings.work_dir) if self.settings.work_dir else self.context.cache_dir / "local"
        runner = LocalRunner(root, self.settings, self.states)
        runner.environment = self.env.environment
        return runner

    @cached_property
    def hosts(self) -> SpaceHosts:
        return SpaceHosts(self.states)

    @cached_property
    def proxy(self) -> SpaceProxy:
        return SpaceProxy(self.runner, self.states)

    @cached_property
    def kube(self) -> KubernetesRuntime:
        from .kube import KubernetesRuntime

        return KubernetesRuntime(self.settings, self.states, self.env)

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        if event.repo.type != "space":
            return
        update = event.default_branch_update()
        if update is None:
            return
        if update.is_delete:
            self._stop(event.repo, STOPPED)
            return
        if event.view.head() != update.new:
            return  # a newer push moved the branch since: its own job deploys that one
        self._deploy(event.repo, event.view, update.new)

    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        repo = event.repo
        if repo is None or repo.type != "space":
            return
        if event.task == "deploy":
            view = self.context.view(repo)
            head = view.head()
            if head is not None:
                self._deploy(repo, view, head)
        elif event.task == "restart":
            self._restart(repo)
        elif event.task in ("stop", "pause"):
            self._stop(repo, PAUSED if event.task == "pause" else STOPPED)

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        if repo.type == "space":
            if self.settings.runtime == "kubernetes":
                self.kube.delete(repo)
            self.runner.forget(repo.id)
            self.env.forget(repo.id)

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo) -> None:
        row = self.states.get(repo.id) if repo.type == "space" else None
        if row is not None:
            self.states.set(repo.id, repo.full_name)
            if row.stage == RUNNING and row.sdk != "static":
                self._restart(repo)  # the app's URL prefix changed

    @hookimpl
    def gitd_daemon_started(self) -> None:
        if self.settings.runtime == "local":
            self.runner.suspend_all()

    @hookimpl
    def gitd_daemon_stopping(self) -> None:
        self._closing.set()  # logs streams end
        if "runner" in self.__dict__:
            self.runner.shutdown()

    @hookimpl
    def gitd_repo_info(self, repo: RepoInfo) -> dict | None:
        if repo.type != "space":
            return None
        row = self.states.get(repo.id)
        info = {"runtime": self.runtime(row)} if row is not None else {}
        label = host_label(repo.full_name)
        if self.settings.host_domain and self.settings.runtime == "local" and label:
            info.update(subdomain=label, host=f"{self.settings.host_scheme}://{label}.{self.settings.host_domain.lower()}")
        return info or None

    @hookimpl
    def gitd_http_hosts(self) -> list:
        if not self.settings.host_domain or self.settings.runtime != "local":
            return []
        return [HostRoute(self.settings.host_domain, self.hosts.target)]

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [
            RepoRoute("*", "/app/{path*}", self.proxy_request, mount="repo", stream=True, types=SPACE,
                      relay=self.relay_target, summary="the space's app (HTTP and WebSocket)"),
            RepoRoute("GET", "/runtime", self.get_runtime, types=SPACE, summary="the space's runtime"),
            RepoRoute("POST", "/restart", self.post_restart, access="write", types=SPACE,
                      summary="restart the space (factory=true: rebuild it)"),
            RepoRoute("POST", "/pause", self.post_pause, access="write", types=SPACE, summary="pause the space"),
            RepoRoute("POST", "/sleeptime", self.post_sleeptime, access="write", types=SPACE,
                      summary="idle seconds before the space sleeps"),
            RepoRoute("GET", "/logs/{kind}", self.get_logs, access="write", types=SPACE,
                      summary="the space's build or run log"),
            RepoRoute("GET", "/secrets", self.get_secrets, access="write", types=SPACE,
                      summary="the space's secrets: names and descriptions, never values"),
            RepoRoute("POST", "/secrets", self.post_secret, access="write", types=SPACE,
                      summary="add or update a secret (the app gets it on its next start)"),
            RepoRoute("DELETE", "/secrets", self.delete_secret, access="write", types=SPACE,
                      summary="delete a secret"),
            RepoRoute("GET", "/variables", self.get_variables, types=SPACE, summary="the space's variables"),
            RepoRoute("POST", "/variables", self.post_variable, access="write", types=SPACE,
                      summary="add or update a variable (the app gets it on its next start)"),
            RepoRoute("DELETE", "/variables", self.delete_variable, access="write", types=SPACE,
                      summary="delete a variable"),
        ]

    @hookimpl
    def gitd_web_tabs(self, repo: RepoInfo) -> list | None:
        from .web import SpaceTab

        return SpaceTab(self).tabs(repo)

    @hookimpl
    def gitd_cli_commands(self) -> list:
        return [
            CliCommand("spaces", "list", "list spaces and their stages", self.cli_list),
            CliCommand("spaces", "status", "a space's stage and error", self.cli_status, _repo_arg),
            CliCommand("spaces", "logs", "a space's run (or build) log", self.cli_logs, _logs_args),
            CliCommand("spaces", "restart", "restart a space (the daemon does it)", self.cli_restart, _repo_arg),
            CliCommand("spaces", "stop", "stop a space until it is restarted", self.cli_stop, _repo_arg),
        ]

    # -- the runtime ---------------------------------------------------------------------------
    def _deploy(self, repo: RepoInfo, view: RepoView, commit: str) -> None:
        if self.settings.runtime == "kubernetes":
            self.kube.deploy(repo, view, commit)
        else:
            self.runner.deploy(repo, view, commit)

    def _restart(self, repo: RepoInfo) -> None:
        if self.settings.runtime == "local" and self.runner.restart(repo.id) is not None:
            return
        view = self.context.view(repo)
        head = view.head()
        if head is not None:
            self._deploy(repo, view, head)

    def _stop(self, repo: RepoInfo, stage: str) -> None:
        if self.settings.runtime == "kubernetes":
            self.kube.stop(repo, stage)
        else:
            self.runner.stop(repo.id, stage)
            row = self.states.get(repo.id)
            if row is not None and row.stage != stage:
                self.states.set(repo.id, repo.full_name, stage=stage, pid=None, port=None)

    def runtime(self, row: SpaceRow | None) -> dict:
        """The Hub's runtime answer (huggingface_hub.SpaceRuntime)."""
        stage = row.stage if row is not None else "NO_APP_FILE"
        sleep = row.sleep_time if row is not None and row.sleep_time is not None else self.settings.sleep_time
        return {"stage": stage, "hardware": {"current": "cpu-basic" if stage == RUNNING else None,
                                             "requested": "cpu-basic"},
                "storage": None, "gcTimeout": int(sleep) if sleep else None,
                "replicas": {"current": 1 if stage == RUNNING else 0, "requested": 1},
                "sdk": row.sdk if row else None, "errorMessage": row.error if row else None,
                "commit": row.commit_id if row else None, "restarts": row.restarts if row else 0,
                "runtime": row.runtime if row else self.settings.runtime}

    # -- HTTP ----------------------------------------------------------------------------------
    async def proxy_request(self, request: PluginRequest):
        return await self.proxy.handle(request)

    def relay_target(self, repo: RepoInfo) -> RelayTarget | None:
        """API 1.6: while the space's app is up, the daemon relays plain requests to it itself
        (the handler above still serves WebSockets, large uploads and a space to wake)."""
        port = self.runner.ready_port(repo.id)
        if port is None:
            return None
        return RelayTarget(port, done=self.runner.hold(repo.id))

    def get_runtime(self, request: PluginRequest) -> dict:
        repo = request.repo
        assert repo is not None
        row = self.states.get(repo.id)
        if row is not None and row.runtime == "kubernetes" and self.settings.runtime == "kubernetes":
            try:
                row = self.kube.refresh(repo)
            except Exception as exc:  # the cluster unreachable: answer what is known, say why
                self.context.log.warning("space %s: cannot read its Space resource: %s", repo.full_name, exc)
        return self.runtime(row)

    def post_restart(self, request: PluginRequest) -> dict:
        repo = request.repo
        assert repo is not None
        if request.query.get("factory") == "true":
            self.context.submit(repo, "deploy", {}, key=f"deploy:{repo.id}")
        else:
            self._restart(repo)
        return self.runtime(self.states.get(repo.id))

    def post_pause(self, request: PluginRequest) -> dict:
        assert request.repo is not None
        self._stop(request.repo, PAUSED)
        return self.runtime(self.states.get(request.repo.id))

    def post_sleeptime(self, request: PluginRequest) -> dict:
        repo = request.repo
        assert repo is not None
        seconds = (request.json() or {}).get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or (seconds < 0 and seconds != -1):
            raise HTTPError(400, "seconds must be a whole number of seconds (-1: never sleep)")
        if self.states.get(repo.id) is None:
            self.states.set(repo.id, repo.full_name, stage=STOPPED)
        self.states.set(repo.id, repo.full_name, sleep_time=float(max(seconds, 0)))
        return self.runtime(self.states.get(repo.id))

    def log_live(self, repo_id: int, kind: str) -> bool:
        """Whether the log of ``kind`` may still grow: a build under way, an app starting,
        running or waiting to restart after a crash (on this host)."""
        row = self.states.get(repo_id)
        if row is None or row.runtime != "local":
            return False
        if kind == "build":
            return row.stage == BUILDING
        return row.sdk != "static" and (row.stage in (BUILDING, APP_STARTING, RUNNING)
                                        or repo_id in self.runner.running())

    async def get_logs(self, request: PluginRequest):
        """Server-sent events, as the Hub answers (logstream.py)."""
        repo = request.repo
        assert repo is not None
        kind = request.params["kind"]
        if kind not in ("build", "run"):
            raise HTTPError(404, "logs are build or run")
        if self._streams >= self.settings.log_streams:
            raise HTTPError(429, f"{self._streams} logs streams are open, the most this server allows; "
                                 "try again later")
        self._streams += 1
        try:
            if self.settings.runtime == "kubernetes":
                row = await asyncio.to_thread(self.states.get, repo.id)
                if row is not None and row.runtime == "kubernetes":
                    return await self._kube_logs(request, repo, kind)
            return await stream(request.raw, self.runner.log(repo.id, kind),
                                lambda: asyncio.to_thread(self.log_live, repo.id, kind),
                                follow_for=self.settings.log_follow, closing=self._closing.is_set)
        finally:
            self._streams -= 1

    async def _kube_logs(self, request: PluginRequest, repo: RepoInfo, kind: str):
        from .kube import SpaceLog

        try:
            sources = await asyncio.to_thread(self.kube.log_sources, repo, kind)
        except Exception as exc:
            self.context.log.warning("space %s: cannot list its pods: %s", repo.full_name, exc)
            raise HTTPError(503, "the space's pods cannot be read from the cluster now; try again later") from None
        log = SpaceLog(self.kube, sources, tail=self.settings.log_tail if kind == "run" else None,
                       timeout=float(self.settings.log_follow) + 30)  # a backstop: the stream ends first
        return await stream_lines(request.raw, log.lines(), log.close, follow_for=self.settings.log_follow,
                                  closing=self._closing.is_set, log=self.context.log)

    # -- secrets and variables (env.py) ----------------------------------------------------------
    def get_secrets(self, request: PluginRequest) -> dict:
        assert request.repo is not None
        return {e.key: {"key": e.key, "description": e.description, "updatedAt": e.updated_at()}
                for e in self.env.entries(request.repo.id, SECRET)}

    def get_variables(self, request: PluginRequest) -> dict:
        assert request.repo is not None
        return {e.key: {"value": e.value, "description": e.description, "updatedAt": e.updated_at()}
                for e in self.env.entries(request.repo.id, VARIABLE)}

    def _change(self, request: PluginRequest, kind: str, delete: bool) -> None:
        assert request.repo is not None
        body = request.json()
        if not isinstance(body, dict):
            raise HTTPError(400, 'the body must be a JSON object: {"key": ..., "value": ..., "description": ...}')
        try:
            if delete:
                self.env.delete(request.repo.id, kind, body.get("key"))
            else:
                self.env.put(request.repo.id, kind, body.get("key"), body.get("value"), body.get("description"))
        except EnvError as exc:
            raise HTTPError(exc.status, exc.message) from None

    def post_secret(self, request: PluginRequest) -> dict:
        self._change(request, SECRET, delete=False)
        return {}

    def delete_secret(self, request: PluginRequest) -> dict:
        self._change(request, SECRET, delete=True)
        return {}

    def post_variable(self, request: PluginRequest) -> dict:
        self._change(request, VARIABLE, delete=False)
        return self.get_variables(request)

    def delete_variable(self, request: PluginRequest) -> dict:
        self._change(request, VARIABLE, delete=True)
        return self.get_variables(request)

    # -- command line --------------------------------------------------------------------------
    def _space(self, name: str) -> tuple[RepoInfo, SpaceRow | None]:
        repo = self.context.find_repo(name, "space")
        if repo is None:
            raise PluginError(f"no space named {name}")
        return repo, self.states.get(repo.id)

    def cli_list(self, args: argparse.Namespace) -> int:
        for row in self.states.all():
            print(f"{row.name}\t{row.stage}\t{row.sdk or '-'}\t{(row.commit_id or '-')[:12]}\t{row.error or ''}")
        return 0

    def cli_status(self, args: argparse.Namespace) -> int:
        _, row = self._space(args.space)
        runtime = self.runtime(row)
        for key in ("stage", "sdk", "commit", "errorMessage", "restarts", "gcTimeout", "runtime"):
            print(f"{key}: {runtime[key] if runtime[key] is not None else '-'}")
        return 0

    def cli_logs(self, args: argparse.Namespace) -> int:
        repo, _ = self._space(args.space)
        kind = "build" if args.build else "run"
        if not args.follow:
            sys.stdout.write(self.runner.log(repo.id, kind).tail().decode("utf-8", "replace"))
            return 0
        follower = LogFollower(self.runner.log(repo.id, kind))
        text = codecs.getincrementaldecoder("utf-8")("replace")  # a character cut between two reads stays whole

        def copy() -> None:
            for data, _when in follower.read():
                sys.stdout.write(text.decode(data))
            sys.stdout.flush()

        try:
            while True:
                copy()
                if not self.log_live(repo.id, kind):
                    break
                time.sleep(0.25)
        except KeyboardInterrupt:
            pass
        copy()
        return 0

    def cli_restart(self, args: argparse.Namespace) -> int:
        repo, _ = self._space(args.space)
        self.context.submit(repo, "restart", {}, key=f"restart:{repo.id}")
        print(f"{repo.full_name}: restart queued")
        return 0

    def cli_stop(self, args: argparse.Namespace) -> int:
        repo, _ = self._space(args.space)
        self.context.submit(repo, "stop", {}, key=f"stop:{repo.id}")
        print(f"{repo.full_name}: stop queued")
        return 0


def _repo_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", metavar="NS/NAME")


def _logs_args(parser: argparse.ArgumentParser) -> None:
    _repo_arg(parser)
    parser.add_argument("--build", action="store_true", help="the build log instead of the run log")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="the whole kept log, then what follows while the space builds or runs")
