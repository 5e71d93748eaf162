"""The Git LFS locking API over HTTP (``git lfs lock``, ``locks``, ``unlock`` and the
push-time verification git-lfs runs in its pre-push hook).

    GET  {repo}/info/lfs/locks?path=&id=&cursor=&limit=   list (read)
    POST {repo}/info/lfs/locks                            create: 201, or 409 with the lock (write)
    POST {repo}/info/lfs/locks/verify                     ours / theirs (write)
    POST {repo}/info/lfs/locks/{id}/unlock                unlock; others need force + admin (write)
"""

from __future__ import annotations

from aiohttp import web

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.http.context import principal
from gitd.http.lfs import lfs_json, read_json
from gitd.http.routing import Match, Router
from gitd.lfs.locks import LockConflict
from gitd.lfs.service import LfsService
from gitd.repos import RepoService
from gitd.store import Account, Repo


class LfsLocksHTTP:
    def __init__(self, repos: RepoService, access: Access, lfs: LfsService):
        self.repos = repos
        self.access = access
        self.lfs = lfs

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}/info/lfs/locks", self.list, style="lfs", name="lfs-locks-list")
        router.add("POST", "/{repo}/info/lfs/locks", self.create, style="lfs", name="lfs-locks-create")
        router.add("POST", "/{repo}/info/lfs/locks/verify", self.verify, style="lfs", name="lfs-locks-verify")
        router.add("POST", "/{repo}/info/lfs/locks/{id}/unlock", self.unlock, style="lfs", name="lfs-locks-unlock")

    def _authorize(self, request: web.Request, m: Match, needed: AccessLevel) -> tuple[Repo, Principal, AccessLevel]:
        assert m.repo is not None
        repo = self.repos.find(m.repo.type, m.repo.namespace, m.repo.name)
        p = principal(request)
        level = self.access.require(p, repo, needed)
        assert repo is not None
        return repo, p, level

    @staticmethod
    def _account(p: Principal) -> Account:
        assert p.account is not None  # write access is never anonymous
        return p.account

    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo, _, _ = self._authorize(request, m, AccessLevel.READ)
        q = request.query
        locks, next_cursor = self.lfs.locks.list(repo.id, path=q.get("path"), lock_id=q.get("id"),
                                                 cursor=q.get("cursor"), limit=q.get("limit"))
        body: dict = {"locks": [lock.to_json() for lock in locks]}
        if next_cursor:
            body["next_cursor"] = next_cursor
        return lfs_json(body)

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo, p, _ = self._authorize(request, m, AccessLevel.WRITE)
        body = await read_json(request)
        ref = body.get("ref")
        ref_name = ref.get("name") if isinstance(ref, dict) and isinstance(ref.get("name"), str) else None
        try:
            lock = self.lfs.locks.create(repo.id, self._account(p), body.get("path"), ref_name)
        except LockConflict as exc:
            return lfs_json({"lock": exc.lock.to_json(), "message": exc.message}, status=409)
        return lfs_json({"lock": lock.to_json()}, status=201)

    async def verify(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo, p, _ = self._authorize(request, m, AccessLevel.WRITE)
        body = await read_json(request)
        ours, theirs, next_cursor = self.lfs.locks.verify(repo.id, self._account(p), cursor=body.get("cursor"),
                                                          limit=body.get("limit"))
        answer: dict = {"ours": [lock.to_json() for lock in ours], "theirs": [lock.to_json() for lock in theirs]}
        if next_cursor:
            answer["next_cursor"] = next_cursor
        return lfs_json(answer)

    async def unlock(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo, p, level = self._authorize(request, m, AccessLevel.WRITE)
        body = await read_json(request)
        lock = self.lfs.locks.unlock(repo.id, m.params["id"], self._account(p), force=body.get("force") is True,
                                     is_admin=level >= AccessLevel.ADMIN)
        return lfs_json({"lock": lock.to_json()})
