"""Webhook deliveries: events become signed HTTP POSTs, each a durable job with retries.

``WebhookEvents`` is registered with the plugin host as the built-in plugin ``webhooks``
(disable it as any plugin: ``[plugins] disabled = ["webhooks"]``). Repository events reach it
through the hooks every plugin gets (pushes and API commits: scope ``repo.content``;
created, deleted, moved, made private or public: ``repo`` and ``repo.config``); discussion
events come from the Hub API's handlers (``discussion``, ``discussion.comment``). For each
enabled webhook that watches the repository, its type and name, or its namespace as a user or
an organisation, and whose owner may read the repository at that moment, it queues one
``deliver`` task: the job POSTs the Hub-shaped JSON payload to the webhook's URL with
``X-Webhook-Secret`` (as the Hub sends it) and ``X-Webhook-Signature-256: sha256=HMAC``
of the body under the secret; a refused or failed delivery is retried by the job queue with
backoff, and kept as a failed job after its last attempt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.hub.common import TYPE_API, RepoCtx
from gitd.names import repo_url_path
from gitd.plugins.context import PluginContext
from gitd.plugins.events import PushEvent, RepoCreated, RepoDeleted, RepoInfo, RepoRenamed, TaskEvent
from gitd.plugins.hookspecs import hookimpl
from gitd.store import Accounts, Repo, Repos
from gitd.store.discussions import Discussion
from gitd.store.webhooks import Webhook, Webhooks

log = logging.getLogger("gitd.webhooks")

NAME = "webhooks"
TIMEOUT = 10.0
VERSION = 3


class DeliveryFailed(Exception):
    pass


class WebhookEvents:
    def __init__(self, context: PluginContext, webhooks: Webhooks, accounts: Accounts, repo_rows: Repos,
                 access: Access, *, public_url: str = ""):
        self.context = context
        self.webhooks = webhooks
        self.accounts = accounts
        self.repo_rows = repo_rows
        self.access = access
        self.public_url = public_url.rstrip("/")

    # -- payloads ------------------------------------------------------------------------------------
    def repo_json(self, repo: RepoInfo) -> dict[str, Any]:
        web = f"{self.public_url}/{repo_url_path(repo.type, repo.namespace, repo.name)}"
        return {"type": repo.type, "name": repo.full_name, "id": f"{repo.id:024x}", "private": repo.private,
                "url": {"web": web, "api": f"{self.public_url}/api/{TYPE_API[repo.type]}/{repo.full_name}"},
                "owner": {"name": repo.namespace}}

    # -- fan-out -------------------------------------------------------------------------------------
    def _may_read(self, webhook: Webhook, repo: RepoInfo, row: Repo | None) -> bool:
        """Whether the webhook's owner may read the repository (a private one stays hidden)."""
        owner = self.accounts.by_id(webhook.owner_id)
        if row is None:  # deleted already: judge by what the event says of it
            if not repo.private:
                return True
            namespace = self.accounts.find(repo.namespace)
            return owner.is_admin or (namespace is not None and (namespace.id == owner.id or
                                                                 self.accounts.role_in(namespace.id, owner.id)))
        return self.access.level(Principal(owner), row, gate=False) >= AccessLevel.READ

    def emit(self, repo: RepoInfo, domain: str, event: dict[str, Any], extra: dict[str, Any], *,
             key: str) -> int:
        """Queue a delivery to each webhook watching ``repo`` for ``domain``; how many were queued."""
        hooks = self.webhooks.watching(repo.type, repo.full_name, repo.namespace, domain)
        if not hooks:
            return 0
        row = self.repo_rows.by_id(repo.id)
        queued = 0
        for webhook in hooks:
            if not self._may_read(webhook, repo, row):
                continue
            body = {"event": event, "repo": self.repo_json(repo), **extra,
                    "webhook": {"id": f"{webhook.id:024x}", "version": VERSION}}
            self.context.submit(repo, "deliver", {"webhook": webhook.id, "body": body},
                                key=f"{webhook.id}:{key}")
            queued += 1
        return queued

    # -- repository events (as every plugin gets them: durable jobs) -----------------------------
    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        refs = [{"ref": u.ref, "oldSha": u.old, "newSha": u.new} for u in event.updates]
        head = next((u.new for u in event.updates if u.ref == f"refs/heads/{event.repo.default_branch}"), None)
        extra: dict[str, Any] = {"updatedRefs": refs}
        if head is not None:
            extra["headSha"] = head
        key = "push:" + hashlib.sha256(json.dumps(refs).encode()).hexdigest()[:24]
        self.emit(event.repo, "repo", {"action": "update", "scope": "repo.content"}, extra, key=key)

    @hookimpl
    def gitd_repo_created(self, repo: RepoInfo, event: RepoCreated) -> None:
        self.emit(repo, "repo", {"action": "create", "scope": "repo"}, {}, key="created")

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo, event: RepoDeleted) -> None:
        self.emit(repo, "repo", {"action": "delete", "scope": "repo"}, {}, key="deleted")

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo, event: RepoRenamed) -> None:
        self.emit(repo, "repo", {"action": "move", "scope": "repo"},
                  {"movedTo": {"name": repo.full_name}}, key=f"moved:{repo.full_name}")

    @hookimpl
    def gitd_repo_visibility_changed(self, repo: RepoInfo) -> None:
        self.emit(repo, "repo", {"action": "update", "scope": "repo.config"},
                  {"updatedConfig": {"private": repo.private}}, key=f"visibility:{repo.private}:{secrets.token_hex(6)}")

    # -- discussion events (from the Hub API's handlers) ----------------------------------------------
    def discussion(self, repo: RepoInfo, num: int, title: str, status: str, is_pr: bool, author: str | None,
                   action: str, comment: dict[str, Any] | None = None) -> int:
        web = f"{self.repo_json(repo)['url']['web']}/discussions/{num}"
        extra: dict[str, Any] = {"discussion": {
            "num": num, "title": title, "status": status, "isPullRequest": is_pr, "url": {"web": web},
            "author": {"name": author or "deleted"}}}
        scope = "discussion"
        if comment is not None:
            scope = "discussion.comment"
            extra["comment"] = {**comment, "url": {"web": f"{web}#{comment['id']}"}}
        key = f"discussion:{num}:{action}:{comment['id'] if comment else secrets.token_hex(6)}"
        return self.emit(repo, "discussion", {"action": action, "scope": scope}, extra, key=key)

    async def discussion_listener(self, ctx: RepoCtx, d: Discussion, action: str,
                                  comment: dict[str, Any] | None) -> None:
        """A PullRequests listener: the discussion event's deliveries, queued off the loop."""
        info = RepoInfo(ctx.repo.id, ctx.repo.namespace, ctx.repo.name, ctx.repo.type, ctx.repo.private, ctx.path,
                        ctx.repo.default_branch)
        await asyncio.to_thread(self.discussion, info, d.num, d.title, d.status, d.is_pull_request, d.author,
                                action, comment)

    # -- deliveries ----------------------------------------------------------------------------------
    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        if event.task != "deliver":
            return
        webhook = self.webhooks.get(int(event.payload["webhook"]))
        if webhook is None or webhook.disabled:
            return  # deleted or disabled since: nothing to deliver
        deliver(webhook, event.payload["body"])


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(webhook: Webhook, payload: dict[str, Any]) -> None:
    """POST one payload; DeliveryFailed (retried by the job queue) unless the receiver answers 2xx."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "gitd-webhooks"}
    if webhook.secret:
        headers["X-Webhook-Secret"] = webhook.secret
        headers["X-Webhook-Signature-256"] = signature(webhook.secret, body)
    req = urllib.request.Request(webhook.url, data=body, method="POST", headers=headers)
    try:
        # http(s) only (checked when saved); urllib follows redirects to http(s) and ftp only
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            resp.read(1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"webhook {webhook.id:024x}: {webhook.url[:200]} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryFailed(f"webhook {webhook.id:024x}: {webhook.url[:200]}: {exc}") from None
