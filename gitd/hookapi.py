"""The daemon's internal hook API, served on a Unix socket (mode 0600) in the data dir.

git's receive hooks (hooks/gitd_hook.py) POST their ref lines here with the token of
the push they belong to. Answers are ``{"ok": bool, "message": str}``: the message is
for the pusher, while details of internal errors stay in the server log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from gitd.errors import PushRejected
from gitd.events import PushEvent, RefUpdate
from gitd.hookchain import HookChain, PushSession, PushSessions
from gitd.repos import RepoService

log = logging.getLogger("gitd.hookapi")

_HEX40 = frozenset("0123456789abcdef")
QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def _reply(ok: bool, message: str = "", status: int = 200) -> web.Response:
    return web.json_response({"ok": ok, "message": message}, status=status)


def _parse_updates(raw: Any) -> list[RefUpdate]:
    if not isinstance(raw, list):
        raise ValueError("updates must be a list")
    updates = []
    for item in raw:
        ref, old, new = item
        if not (isinstance(ref, str) and ref.startswith("refs/")):
            raise ValueError(f"bad ref {ref!r}")
        for oid in (old, new):
            if not (isinstance(oid, str) and len(oid) == 40 and set(oid) <= _HEX40):
                raise ValueError(f"bad object id {oid!r}")
        updates.append(RefUpdate(ref, old, new))
    return updates


def _quarantine_env(raw: Any, repo_path: Path) -> dict[str, str]:
    """Keep only git's quarantine variables, and only paths inside this repository."""
    if not isinstance(raw, dict):
        return {}
    objects = (repo_path / "objects").resolve()
    env = {}
    for key in QUARANTINE_ENV:
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            continue
        paths = value.split(os.pathsep) if key == "GIT_ALTERNATE_OBJECT_DIRECTORIES" else [value]
        base = repo_path.resolve() if key == "GIT_QUARANTINE_PATH" else objects
        if all(Path(p).resolve().is_relative_to(base) for p in paths):
            env[key] = value
        else:
            raise ValueError(f"{key} points outside the repository")
    return env


class HookAPI:
    def __init__(self, sessions: PushSessions, chain: HookChain, repos: RepoService,
                 lfs_missing: Callable[[int, Iterable[str]], set[str]] | None = None):
        self.sessions = sessions
        self.chain = chain
        self.repos = repos
        self.lfs_missing = lfs_missing

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook/pre-receive", self.pre_receive)
        app.router.add_post("/hook/post-receive", self.post_receive)
        return app

    async def _session_and_body(self, request: web.Request) -> tuple[PushSession, dict[str, Any]]:
        session = self.sessions.get(request.headers.get("X-Gitd-Push-Token"))
        if session is None:
            raise web.HTTPForbidden(
                text='{"ok": false, "message": "gitd: this push has no valid daemon token; refused."}',
                content_type="application/json",
            )
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
        return session, body

    def _event(self, session: PushSession, body: dict[str, Any], *, quarantine: bool) -> PushEvent:
        info = self.repos.info(session.repo)
        env = _quarantine_env(body.get("env"), info.path) if quarantine else {}
        options = [str(o) for o in body.get("push_options") or []]
        lfs_missing = None
        if self.lfs_missing is not None:
            check = self.lfs_missing
            repo_id = info.id

            def lfs_missing(oids: Iterable[str]) -> set[str]:
                return check(repo_id, oids)

        return PushEvent(repo=info, pusher=session.principal.name, updates=_parse_updates(body.get("updates")),
                         via=session.via, push_options=options, git_env=env, lfs_missing=lfs_missing)

    async def pre_receive(self, request: web.Request) -> web.Response:
        try:
            session, body = await self._session_and_body(request)
            event = self._event(session, body, quarantine=True)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("malformed pre-receive call: %s", exc)
            return _reply(False, "gitd: malformed hook call; push refused.", status=400)
        try:
            await self.chain.run_pre_receive(event)
        except PushRejected as exc:
            return _reply(False, exc.message)
        return _reply(True)

    async def post_receive(self, request: web.Request) -> web.Response:
        try:
            session, body = await self._session_and_body(request)
            event = self._event(session, body, quarantine=False)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("malformed post-receive call: %s", exc)
            return _reply(False, "gitd: malformed hook call.", status=400)
        self.repos.after_push(session.repo, event.updates)
        self.chain.post_receive(event)
        return _reply(True)
