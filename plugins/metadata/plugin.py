"""The metadata plugin's hooks, routes and commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from gitd.plugin_api import (
    CliCommand,
    HTTPError,
    PluginContext,
    PluginError,
    PluginRequest,
    PushEvent,
    RepoIds,
    RepoInfo,
    RepoRoute,
    TaskEvent,
    WebRequest,
    WebTab,
    hookimpl,
    html_escape,
)

from .settings import Settings, parse_tagging
from .store import MetadataStore
from .tagger import Tagger

MAX_LINEAGE_DEPTH = 32
MAX_LINEAGE_NODES = 1000


class MetadataPlugin:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(Settings)
        self.tagging = parse_tagging(self.settings)
        self._store: MetadataStore | None = None

    @property
    def store(self) -> MetadataStore:  # opened on first use: listing the CLI's commands opens nothing
        if self._store is None:
            self._store = MetadataStore(self.context.storage)
        return self._store

    @property
    def tagger(self) -> Tagger:
        return Tagger(self.context, self.store, self.settings, self.tagging)

    # -- jobs ----------------------------------------------------------------------------------
    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        # Tags describe the default branch: other refs do not change them. The job tags the
        # branch's head as it is when it runs (a later push's job finds nothing left to do).
        if event.default_branch_update() is not None:
            self.tagger.tag(event.repo)

    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        if event.task == "retag" and event.repo is not None:
            self.tagger.tag(event.repo, full=bool(event.payload.get("full")),
                            rederive=bool(event.payload.get("rederive", True)))

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        self.store.forget(repo.id)
        self.tagger.retag_children(repo)

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo) -> None:
        self.store.set_identity(repo)

    @hookimpl
    def gitd_repo_visibility_changed(self, repo: RepoInfo) -> None:
        # Its children's license checks read a base model's license only while it is public.
        self.store.set_identity(repo)
        self.tagger.retag_children(repo)

    # -- what the Hub answers ------------------------------------------------------------------
    @hookimpl
    def gitd_repo_info(self, repo: RepoInfo) -> dict[str, Any] | None:
        return self.store.info(repo.id)

    @hookimpl
    def gitd_repo_filter(self, repo_type: str, filters: dict[str, list[str]]) -> RepoIds | None:
        return self.store.matches(repo_type, filters)

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [RepoRoute("GET", "/metadata", self.http_metadata, summary="derived tags, fields and flags"),
                RepoRoute("POST", "/metadata/retag", self.http_retag, access="write",
                          summary="tag the repository again (?full=1: read every file again)"),
                RepoRoute("GET", "/lineage", self.http_lineage, types=("model",),
                          summary="base models (ancestors) and fine-tunes, adapters, quantisations, merges")]

    @hookimpl
    def gitd_cli_commands(self) -> list:
        def repo_args(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("repo", metavar="NS/NAME")
            parser.add_argument("--type", default="model", choices=["model", "dataset", "space", "code"])

        def retag_args(parser: argparse.ArgumentParser) -> None:
            repo_args(parser)
            parser.add_argument("--full", action="store_true", help="read every file again")

        return [CliCommand("metadata", "tags", "show a repository's derived tags and flags", self.cli_tags, repo_args),
                CliCommand("metadata", "retag", "queue a repository for tagging again", self.cli_retag, retag_args)]

    # -- HTTP ----------------------------------------------------------------------------------
    def describe(self, repo: RepoInfo) -> dict[str, Any]:
        row = self.store.row(repo.id)
        info = json.loads(row["info"]) if row else {}
        files = self.store.stored(repo.id, repo.type).files
        # commit: what the tags and fields describe (the facts of a newer one may be stored
        # already, a moment before they are published)
        return {"id": repo.full_name, "commit": row["published_commit"] if row else None,
                "tags": info.get("tags", []),
                "flags": info.get("metadataFlags", []), "fields": info,
                "files": [{"path": p, "reader": r, "warning": w} for p, (r, _, w) in sorted(files.items())],
                "last_job": self.store.storage.kv.get(f"last-job:{repo.id}")}

    def http_metadata(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        return self.describe(request.repo)

    def http_retag(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        full = request.query.get("full", "") in ("1", "true", "yes")
        job = self.context.submit(request.repo, "retag", {"full": full})
        return {"queued": job is not None, "job": job}

    def http_lineage(self, request: PluginRequest) -> dict[str, Any]:
        """Ancestors and descendants among the repositories the caller may read."""
        assert request.repo is not None

        def readable(name: str) -> RepoInfo | None:
            try:
                return request.repository(name, "model", "read")
            except HTTPError:
                return None

        return self.lineage(request.repo, readable)

    def lineage(self, repo: RepoInfo, readable: Callable[[str], RepoInfo | None]) -> dict[str, Any]:
        """The walk goes through repositories ``readable`` answers only, so nothing private is
        named or crossed."""
        seen = {repo.id}
        ancestors: list[dict[str, Any]] = []
        frontier = [(repo, 0)]
        while frontier and len(ancestors) < MAX_LINEAGE_NODES:
            current, depth = frontier.pop(0)
            for link in self.store.bases(current.id):
                base = readable(link["base"])
                if base is None or base.id in seen or depth >= MAX_LINEAGE_DEPTH:
                    continue
                seen.add(base.id)
                ancestors.append({"id": base.full_name, "relation": link["relation"], "of": current.full_name,
                                  "depth": depth + 1})
                frontier.append((base, depth + 1))
        seen = {repo.id}
        descendants: list[dict[str, Any]] = []
        frontier = [(repo, 0)]
        while frontier and len(descendants) < MAX_LINEAGE_NODES:
            current, depth = frontier.pop(0)
            for link in self.store.children(current.full_name):
                child = readable(link["full_name"]) if link["type"] == "model" else None
                if child is None or child.id in seen or depth >= MAX_LINEAGE_DEPTH:
                    continue
                seen.add(child.id)
                descendants.append({"id": child.full_name, "relation": link["relation"], "of": current.full_name,
                                    "depth": depth + 1})
                frontier.append((child, depth + 1))
        return {"id": repo.full_name, "ancestors": ancestors, "descendants": descendants}

    # -- web UI --------------------------------------------------------------------------------
    @hookimpl
    def gitd_web_tabs(self, repo: RepoInfo) -> list[WebTab] | None:
        return [WebTab("lineage", "Lineage", self.web_lineage, order=50)] if repo.type == "model" else None

    def web_lineage(self, request: WebRequest) -> str:
        """The Lineage tab: base models above, fine-tunes, adapters, quantisations and merges below."""
        found = self.lineage(request.repo, lambda name: request.readable(name, "model"))

        def listing(items: list[dict[str, Any]], empty: str) -> str:
            if not items:
                return f'<p class="muted">{html_escape(empty)}</p>'
            rows = "".join(
                f'<li><a href="/{html_escape(i["id"])}">{html_escape(i["id"])}</a> '
                f'<span class="badge">{html_escape(i["relation"])}</span> '
                f'<span class="muted">of {html_escape(i["of"])}</span></li>' for i in items)
            return f"<ul>{rows}</ul>"

        return ("<h2>Base models</h2>" + listing(found["ancestors"], "No base model here that you can see.")
                + "<h2>Derived models</h2>"
                + listing(found["descendants"], "No fine-tunes, adapters, quantisations or merges yet."))

    # -- command line --------------------------------------------------------------------------
    def _cli_repo(self, args: argparse.Namespace) -> RepoInfo:
        repo = self.context.find_repo(args.repo, args.type)
        if repo is None:
            raise PluginError(f"no {args.type} repository {args.repo}")
        return repo

    def cli_tags(self, args: argparse.Namespace) -> int:
        d = self.describe(self._cli_repo(args))
        if d["commit"] is None:
            raise PluginError(f"{args.repo} is not tagged yet (empty, or its job has not run: gitd jobs list)")
        print(f"commit {d['commit']}")
        for tag in d["tags"]:
            print(tag)
        for flag in d["flags"]:
            print(f"! {flag['kind']}: {flag['message']}")
        return 0

    def cli_retag(self, args: argparse.Namespace) -> int:
        repo = self._cli_repo(args)
        job = self.context.submit(repo, "retag", {"full": args.full})
        print(f"queued job {job}" if job is not None else f"{args.repo} is already queued for tagging")
        return 0
