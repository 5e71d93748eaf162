"""The mirror plugin's HTTP API (behind the daemon's authentication and access checks).

    GET    /api/{models,datasets,spaces,codes}/NS/REPO/mirror          status (read access)
    PUT    /api/.../NS/REPO/mirror                                     make it a pull mirror (admin)
    PATCH  /api/.../NS/REPO/mirror                                     change settings (admin)
    DELETE /api/.../NS/REPO/mirror                                     stop pulling (admin)
    POST   /api/.../NS/REPO/mirror/sync                                sync now (write access)
    POST   /api/.../NS/REPO/mirror/push                                add a push mirror (admin)
    DELETE /api/.../NS/REPO/mirror/push/{id}                           remove one (admin)
    GET    /api/plugins/mirror/mirrors                                 the mirrors the caller can read

Credentials go in the body (``"credentials": {"username": ..., "token": ...}`` or
``{"ssh_key": ...}``), are stored encrypted, and are never answered back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitd import HTTPError, PluginError, PluginRequest, RepoRoute, Response, Route

from .manage import PullSpec, pull_status, push_status
from .remote import Credentials

if TYPE_CHECKING:
    from . import MirrorPlugin

_BOOLS = ("follow_force", "prune", "read_only", "lfs", "replace")


def routes(plugin: MirrorPlugin) -> list[Route | RepoRoute]:
    api = MirrorApi(plugin)
    out: list[Route | RepoRoute] = [
        RepoRoute("GET", "/mirror", api.status, summary="the repository's mirrors and how they are doing"),
        RepoRoute("POST", "/mirror/sync", api.sync, access="write", summary="sync the pull mirror now"),
        Route("GET", "/mirrors", api.mine, signed_in=True, summary="the mirrors of repositories you can read"),
    ]
    if plugin.settings.api_manage:
        out += [
            RepoRoute("PUT", "/mirror", api.configure, access="admin", summary="make the repository a pull mirror"),
            RepoRoute("PATCH", "/mirror", api.change, access="admin", summary="change the pull mirror's settings"),
            RepoRoute("DELETE", "/mirror", api.remove, access="admin", summary="stop pulling"),
            RepoRoute("POST", "/mirror/push", api.add_push, access="admin", summary="add a push mirror"),
            RepoRoute("DELETE", "/mirror/push/{id}", api.remove_push, access="admin", summary="remove a push mirror"),
        ]
    return out


def _object(request: PluginRequest) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise HTTPError(400, "expected a JSON object")
    return body


def _credentials(body: dict[str, Any]) -> Credentials | None:
    raw = body.get("credentials")
    if raw is None:
        return None
    if not isinstance(raw, dict) or any(not isinstance(v, str | None) for v in raw.values()) \
            or set(raw) - {"username", "token", "password", "ssh_key"}:
        raise HTTPError(400, "credentials: an object with username, token (or password) and/or ssh_key strings")
    return Credentials(raw.get("username"), raw.get("token") or raw.get("password"), raw.get("ssh_key"))


def _interval(body: dict[str, Any]) -> float | None:
    value = body.get("interval")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise HTTPError(400, "interval: a number of seconds (0: sync only when asked)")
    return float(value)


def _flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise HTTPError(400, f"{key}: true or false")
    return value


class MirrorApi:
    def __init__(self, plugin: MirrorPlugin):
        self.plugin = plugin
        self.manager = plugin.manager

    def status(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        return self.manager.status(request.repo)

    def sync(self, request: PluginRequest) -> Response:
        assert request.repo is not None
        try:
            self.manager.pull(request.repo)
        except PluginError as exc:
            raise HTTPError(404, str(exc)) from None
        self.plugin.scheduler.sync_now(request.repo)
        return Response({"queued": True}, status=202)

    def configure(self, request: PluginRequest) -> Response:
        assert request.repo is not None
        body = _object(request)
        unknown = set(body) - {"url", "hub_url", "repo_id", "interval", "refs", "lfs_url", "credentials", *_BOOLS}
        if unknown:
            raise HTTPError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        refs = body.get("refs")
        if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, str) for r in refs)):
            raise HTTPError(400, "refs: a list of ref prefixes")
        for key in ("url", "hub_url", "repo_id", "lfs_url"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise HTTPError(400, f"{key}: a string")
        spec = PullSpec(url=body.get("url"), hub_url=body.get("hub_url"), hub_repo_id=body.get("repo_id"),
                        interval=_interval(body), refs=tuple(refs) if refs else None,
                        follow_force=_flag(body, "follow_force"), prune=_flag(body, "prune") is not False,
                        read_only=_flag(body, "read_only"), lfs=_flag(body, "lfs") is not False,
                        lfs_url=body.get("lfs_url"), credentials=_credentials(body),
                        replace=bool(_flag(body, "replace")))
        try:
            mirror = self.manager.add_pull(request.repo, spec, operator=False)
        except PluginError as exc:
            raise HTTPError(409 if "already" in str(exc) else 400, str(exc)) from None
        return Response(pull_status(mirror), status=201)

    def change(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        body = _object(request)
        unknown = set(body) - {"interval", "read_only", "follow_force", "prune", "credentials"}
        if unknown:
            raise HTTPError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            mirror = self.manager.set_pull(request.repo, interval=_interval(body), read_only=_flag(body, "read_only"),
                                           follow_force=_flag(body, "follow_force"), prune=_flag(body, "prune"),
                                           credentials=_credentials(body))
        except PluginError as exc:
            raise HTTPError(404, str(exc)) from None
        return pull_status(mirror)

    def remove(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        try:
            return {"removed": self.manager.remove(request.repo)}
        except PluginError as exc:
            raise HTTPError(404, str(exc)) from None

    def add_push(self, request: PluginRequest) -> Response:
        assert request.repo is not None
        body = _object(request)
        unknown = set(body) - {"url", "refs", "prune", "lfs", "lfs_url", "credentials"}
        if unknown or not isinstance(body.get("url"), str):
            raise HTTPError(400, "expected {\"url\": ...} with optional refs, prune, lfs, lfs_url, credentials")
        refs = body.get("refs")
        if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, str) for r in refs)):
            raise HTTPError(400, "refs: a list of ref prefixes")
        try:
            mirror = self.manager.add_push(request.repo, body["url"], credentials=_credentials(body),
                                           refs=tuple(refs) if refs else None, prune=_flag(body, "prune") is not False,
                                           lfs=_flag(body, "lfs") is not False, lfs_url=body.get("lfs_url"),
                                           operator=False)
        except PluginError as exc:
            raise HTTPError(400, str(exc)) from None
        return Response(push_status(mirror), status=201)

    def remove_push(self, request: PluginRequest) -> dict[str, Any]:
        assert request.repo is not None
        try:
            return {"removed": self.manager.remove(request.repo, request.params["id"])}
        except PluginError as exc:
            raise HTTPError(404, str(exc)) from None

    def mine(self, request: PluginRequest) -> list[dict[str, Any]]:
        out = []
        for mirror in self.plugin.records.pulls():
            try:
                request.repository(mirror.repo, mirror.type)
            except HTTPError:
                continue
            out.append(pull_status(mirror))
        return out
