"""A repository's settings page (its admins only): visibility, description, default branch,
rename or move to another namespace, and deletion (confirmed by typing the full name)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import BadRequest, Conflict, GitdError
from gitd.http.routing import Match, Router
from gitd.names import check_name
from gitd.store.redirects import Redirects
from gitd.web.core import RepoPage, WebCore, page_handler


class RepoSettingsPages:
    def __init__(self, core: WebCore, redirects: Redirects):
        self.core = core
        self.redirects = redirects

    def add_routes(self, router: Router) -> None:
        router.add(("GET", "POST"), "/{repo}/settings", self.settings, name="web-repo-settings")

    @page_handler
    async def settings(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m, AccessLevel.ADMIN)
        message, error, status = None, None, 200
        if request.method == "POST":
            form = await self.core.form(request, limit=16 * 1024)
            try:
                message = self._change(request, page, form)
            except GitdError as exc:
                if exc.status >= 500:
                    raise
                error, status = exc.message, exc.status
            page = self.core.repo(request, m, AccessLevel.ADMIN)

        def build() -> dict[str, Any]:
            branches = [n[len("refs/heads/"):] for n, _ in self.core.reader.refs(page.path, "refs/heads/")][:500]
            return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, "settings"),
                    "message": message, "error": error, "branches": branches}

        response = await self.core.page(request, "repo/settings.html", build)
        response.set_status(status)
        return response

    def _change(self, request: web.Request, page: RepoPage, form: dict[str, str]) -> str:
        repos, repo = self.core.repos, page.repo
        action = form.get("action")
        if action == "visibility":
            private = form.get("visibility") == "private"
            repos.set_private(repo, private)
            return f"The repository is now {'private' if private else 'public'}."
        if action == "details":
            description = form.get("description", "").strip()[:500]
            branch = form.get("default_branch", repo.default_branch)
            fields: dict[str, Any] = {"description": description}
            if branch != repo.default_branch:
                if self.core.reader.head(page.path, f"refs/heads/{branch}") is None:
                    raise BadRequest("the default branch must be an existing branch")
                self.core.reader.open(page.path).references.create("HEAD", f"refs/heads/{branch}", force=True)
                fields["default_branch"] = branch
            repos.rows.update(repo, **fields)
            return "Saved."
        if action == "rename":
            owner = self.core.accounts.find(form.get("owner", "").strip() or repo.namespace)
            self.core.access.require_namespace(self.core.who(request), owner, AccessLevel.WRITE)
            assert owner is not None
            name = check_name(form.get("name", "").strip(), "repository name")
            if (owner.id, name.lower()) == (repo.owner_id, repo.name.lower()) and name == repo.name:
                return "Nothing changed."
            existing = repos.find(repo.type, owner.name, name)
            if existing is not None and existing.id != repo.id:
                raise Conflict(f"{owner.name}/{name} already exists")
            moved = repos.move(repo, owner, name)
            self.redirects.add(repo.type, repo.namespace, repo.name, repo.id)
            raise web.HTTPSeeOther(f"/{moved.url_path}/settings")
        if action == "delete":
            if form.get("confirm", "") != repo.full_name:
                raise BadRequest(f"type {repo.full_name} to confirm the deletion")
            repos.delete(repo)
            raise web.HTTPSeeOther(f"/{page.principal.name or ''}")
        raise BadRequest("unknown action")
