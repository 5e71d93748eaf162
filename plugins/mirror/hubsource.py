"""Hugging Face-compatible hubs as mirror sources (``--from-hub URL --repo-id ORG/NAME``).

A repository on such a hub is read through its git endpoint (``HUB/ORG/NAME``,
``HUB/datasets/ORG/NAME``, ``HUB/spaces/ORG/NAME``) and its Git LFS batch API, like any
git remote. A hub that offers no git endpoint is read through its file API instead
(``/api/{models,datasets,spaces}/ID/refs``, ``.../tree/REV``, ``/resolve/REV/PATH``):
see ``hubapi``. ``detect`` asks once which of the two the hub serves.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from gitd import PluginError

from .lfs import Guard, LfsError, opener
from .remote import Credentials, parse_remote, redact

PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class HubError(Exception):
    pass


def check_repo_id(repo_id: str, repo_type: str) -> None:
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise PluginError(f"{repo_id!r} is not a hub repository id (ORG/NAME)")
    if repo_type not in PREFIXES:
        raise PluginError(f"a hub mirror is of a model, dataset or space, not a {repo_type}")


def hub_base(hub_url: str) -> str:
    remote, creds = parse_remote(hub_url)
    if not remote.is_http:
        raise PluginError(f"{redact(hub_url)}: a hub is reached over http(s)")
    if creds:
        raise PluginError("give the hub's token with --token-env/--token-file, not in the URL")
    return remote.url.rstrip("/")


def git_url(hub_url: str, repo_id: str, repo_type: str) -> str:
    return f"{hub_base(hub_url)}/{PREFIXES[repo_type]}{repo_id}"


def api_url(hub_url: str, repo_id: str, repo_type: str, tail: str = "") -> str:
    return f"{hub_base(hub_url)}/api/{API_TYPES[repo_type]}/{repo_id}{tail}"


def get(url: str, creds: Credentials, *, stall: float, proxy: str | None, accept: str = "application/json",
        guard: Guard | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body up to 32 MiB) of a GET; status 0 when the host is unreachable."""
    headers = {"Accept": accept, "User-Agent": "gitd-mirror"}
    auth = creds.bearer()
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener(proxy, guard).open(request, timeout=stall) as resp:
            return resp.status, dict(resp.headers), resp.read(32 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), b""
    except (urllib.error.URLError, OSError, LfsError) as exc:
        raise HubError(f"{redact(url)}: {redact(str(exc))}") from None


def get_json(url: str, creds: Credentials, *, stall: float, proxy: str | None,
             guard: Guard | None = None) -> tuple[Any, dict[str, str]]:
    status, headers, body = get(url, creds, stall=stall, proxy=proxy, guard=guard)
    if status != 200:
        raise HubError(f"{redact(url)} answered HTTP {status}")
    try:
        return json.loads(body), headers
    except ValueError:
        raise HubError(f"{redact(url)} did not answer JSON") from None


def detect(hub_url: str, repo_id: str, repo_type: str, creds: Credentials, *, stall: float,
           proxy: str | None, guard: Guard | None = None) -> str:
    """"git" when the hub serves the repository over git (Smart HTTP), "api" when only its
    file API answers; HubError (the sync fails, and asks again next time) otherwise."""
    try:
        status, headers, _ = get(git_url(hub_url, repo_id, repo_type) + "/info/refs?service=git-upload-pack",
                                 creds, stall=stall, proxy=proxy, accept="*/*", guard=guard)
        if status == 200 and headers.get("Content-Type", "").startswith("application/x-git-upload-pack"):
            return "git"
        status, _, _ = get(api_url(hub_url, repo_id, repo_type), creds, stall=stall, proxy=proxy, guard=guard)
    except HubError as exc:
        raise HubError(f"the hub is unreachable: {exc}") from None
    if status == 200:
        return "api"
    if status in (401, 403, 404):
        raise HubError(f"the hub has no {repo_type} {repo_id} this mirror may read (HTTP {status})")
    raise HubError(f"the hub answered HTTP {status} for {repo_type} {repo_id}")
