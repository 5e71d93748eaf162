"""The daemon's internal hook API, served on a Unix socket (mode 0600) in the data dir.

git's receive hooks (hooks/gitd_hook.c, or hooks/gitd_hook.py without a C compiler)
POST to ``/hook/pre-receive`` and ``/hook/post-receive``, with the token of the push
they belong to in ``X-Gitd-Push-Token``. The body is text, so the hooks need no JSON
parser:

    env GIT_OBJECT_DIRECTORY=/.../objects/tmp_objdir-incoming-XXXX
    env GIT_ALTERNATE_OBJECT_DIRECTORIES=/.../objects
    env GIT_QUARANTINE_PATH=/.../objects/tmp_objdir-incoming-XXXX
    option <push option>
    <blank line>
    <old> <new> <ref>        (git's hook input, verbatim)

Values in the header lines are quoted: "%", the ASCII control characters and DEL go as
``%XX`` (both hook programs quote alike), so a value (a push option may hold newlines)
can neither end its line nor forge another. A header line with a raw control character
or a "%" not followed by two hex digits is malformed, and the push is refused.

The answer's status says what the hook does: 200 lets git go on, anything else makes
the hook exit non-zero. The body is plain text for the pusher (git shows it as
``remote:`` lines); details of internal errors stay in the server log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote

from gitd.config import ConfigError
from gitd.errors import PushRejected
from gitd.hooks.chain import HookChain
from gitd.hooks.server import INTERNAL, HookServer
from gitd.hooks.sessions import PushSession, PushSessions
from gitd.plugins.events import PushEvent, RefUpdate
from gitd.repos import RepoService

log = logging.getLogger("gitd.hookapi")

_HEX40 = frozenset("0123456789abcdef")
QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")
TOKEN_HEADER = "X-Gitd-Push-Token"

BAD_TOKEN = "gitd: this push did not come through the gitd daemon (no valid push token); refused."
MALFORMED = "gitd: malformed hook call; push refused."
Reply = tuple[int, str]  # (HTTP status, text for the pusher)


# The longest path a Unix socket can be bound to on Linux (sun_path is 108 bytes).
MAX_SOCKET_PATH = 107


class MalformedHookCall(ValueError):
    pass


class Refused(Exception):
    """A hook call answered without running anything: bad token, malformed body."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.reply: Reply = (status, text)


def prepare_hook_endpoint(socket_path: Path) -> None:
    """Before the socket is bound: a clear error if its path is too long for the kernel,
    and no leftover socket of an earlier daemon."""
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"the hook socket path {socket_path} is {len(os.fsencode(socket_path))} bytes long, more than the "
            f"{MAX_SOCKET_PATH} a Unix socket allows: use a data directory with a shorter path")
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()


_RAW_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unquote_value(value: str) -> str:
    """A header value as the hook quoted it, decoded; MalformedHookCall for anything a hook
    program never sends (a raw control character, a stray "%")."""
    if _RAW_CONTROL.search(value) or _BAD_ESCAPE.search(value):
        raise MalformedHookCall(f"badly quoted header value {value[:80]!r}")
    return unquote(value, errors="surrogateescape") if "%" in value else value


def parse_body(body: bytes) -> tuple[dict[str, str], list[str], list[RefUpdate]]:
    """(env, push options, updates) from a hook call's body."""
    text = body.decode("utf-8", "surrogateescape")
    if text.startswith("\n"):
        head, refs = "", text[1:]
    else:
        head, sep, refs = text.partition("\n\n")
        if not sep:
            raise MalformedHookCall("no blank line after the header")
    env: dict[str, str] = {}
    options: list[str] = []
    for line in head.split("\n") if head else []:
        kind, _, value = line.partition(" ")
        if kind == "env":
            key, eq, val = value.partition("=")
            if not eq or key not in QUARANTINE_ENV:
                raise MalformedHookCall(f"unexpected env line {line[:80]!r}")
            env[key] = unquote_value(val)
        elif kind == "option":
            options.append(unquote_value(value))
        else:
            raise MalformedHookCall(f"unexpected header line {line[:80]!r}")
    updates = []
    for line in refs.split("\n"):
        if not line:
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3:
            raise MalformedHookCall(f"bad ref line {line[:80]!r}")
        old, new, ref = parts
        if not ref.startswith("refs/") or "\0" in ref:
            raise MalformedHookCall(f"bad ref {ref[:80]!r}")
        for oid in (old, new):
            if len(oid) != 40 or not set(oid) <= _HEX40:
                raise MalformedHookCall(f"bad object id {oid[:80]!r}")
        updates.append(RefUpdate(ref, old, new))
    return env, options, updates


def _plain(path: str) -> str | None:
    """An absolute path without its "." and empty components (which never change what it
    resolves to); None for a relative path or one with "..", which only realpath can judge."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not path.startswith("/") or ".." in parts:
        return None
    return "/" + "/".join(parts)


@functools.lru_cache(maxsize=4096)
def _repo_dirs(repo_path: str) -> tuple[str | None, str, str]:
    """(objects dir as git names it, without "." components; its real path; the repository's
    real path). A repository's path is a function of its id, so this is asked once per repository."""
    objects = os.path.join(repo_path, "objects")
    return _plain(objects), os.path.realpath(objects), os.path.realpath(repo_path)


def _realpath(path: str, objects: str | None, objects_real: str) -> str:
    """``os.path.realpath(path)``, without walking every component of the repository's
    path again for what git puts there: the objects dir itself, or an entry in it that is
    not a symbolic link (its quarantine)."""
    plain = _plain(path)
    if plain is not None and objects is not None:
        if plain == objects:
            return objects_real
        head, _, name = plain.rpartition("/")
        if head == objects and not os.path.islink(plain):
            return f"{objects_real}/{name}"
    return os.path.realpath(path)


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def check_quarantine_env(env: dict[str, str], repo_path: Path) -> dict[str, str]:
    """Only paths inside this repository's object store (quarantine path: the repository)."""
    objects, objects_real, repo_real = _repo_dirs(str(repo_path))
    for key, value in env.items():
        paths = value.split(os.pathsep) if key == "GIT_ALTERNATE_OBJECT_DIRECTORIES" else [value]
        base = repo_real if key == "GIT_QUARANTINE_PATH" else objects_real
        if not all(p and "\0" not in p and os.path.isabs(p) and _inside(_realpath(p, objects, objects_real), base)
                   for p in paths):
            raise MalformedHookCall(f"{key} points outside the repository")
    return env


class HookAPI:
    def __init__(self, sessions: PushSessions, chain: HookChain, repos: RepoService):
        self.sessions = sessions
        self.chain = chain
        self.repos = repos

    def server(self) -> HookServer:
        return HookServer({"/hook/pre-receive": self.pre_receive, "/hook/post-receive": self.post_receive},
                          token_header=TOKEN_HEADER)

    def _event(self, session: PushSession, body: bytes) -> PushEvent:
        raw_env, options, updates = parse_body(body)
        info = self.repos.info(session.repo)
        env = check_quarantine_env(raw_env, info.path)
        return PushEvent(repo=info, pusher=session.principal.name, updates=updates, via=session.via,
                         push_options=options, git_env=env)

    def _call(self, hook: str, token: str | None, body: bytes) -> tuple[PushSession, PushEvent]:
        """The push session and event of a hook call, or ``Refused``."""
        session = self.sessions.get(token)
        # Each token gets one pre-receive, then (only after it) one post-receive.
        post = hook == "post-receive"
        used = session is not None and (
            session.post_receive_done or (not session.pre_receive_done if post else session.pre_receive_done))
        if session is None or used:
            log.warning("%s hook call refused: no valid push token", hook)
            raise Refused(403, BAD_TOKEN)
        try:
            return session, self._event(session, body)
        except MalformedHookCall as exc:
            log.warning("malformed %s call for %s: %s", hook, session.repo.full_name, exc)
            raise Refused(400, MALFORMED) from None

    async def pre_receive(self, token: str | None, body: bytes) -> Reply:
        try:
            session, event = self._call("pre-receive", token, body)
            session.pre_receive_done = True  # one pre-receive per push token
            try:
                await self.chain.run_pre_receive(event)
            except PushRejected as exc:
                return 403, str(exc.message)
            # What post-receive may record: the approved updates, without the quarantine.
            session.approved = dataclasses.replace(event, git_env={})
            # Database writes go to the store's threads: a lock held elsewhere holds up this push only.
            session.intent = await self.chain.jobs.store.run(self.chain.record_intent, session.approved)
            return 200, ""
        except Refused as exc:
            return exc.reply
        except Exception:
            log.exception("pre-receive hook call failed")
            return 500, INTERNAL

    async def post_receive(self, token: str | None, body: bytes) -> Reply:
        """Refs moved: record the post-receive jobs before git finishes the push."""
        try:
            session, event = self._call("post-receive", token, body)
            session.post_receive_done = True
            await self.chain.jobs.store.run(self.chain.finish_push, session, event.updates)
            return 200, ""
        except Refused as exc:
            return exc.reply
        except Exception:
            log.exception("post-receive hook call failed")
            return 500, INTERNAL
