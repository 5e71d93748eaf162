"""The mirror plugin's tab on a mirrored repository's web pages (``gitd_web_tabs``, API 1.2).

``/{repo}/tab/mirror/mirror``, shown on repositories with a pull or push mirror, to
whoever may read them (as ``GET .../mirror``): the pull mirror's upstream, state, last
attempt, last success, what the last sync moved (bytes, objects, refs) and its error, and
each push mirror's. Writers get a "Sync now" form (a POST with the CSRF token, checked by
the daemon, as ``POST .../mirror/sync``). Credentials are never shown: the status carries
only whether there are any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitd import PluginError, RepoInfo, WebRequest, WebTab, html_escape

from .manage import pull_status, push_status

if TYPE_CHECKING:
    from . import MirrorPlugin


class MirrorTab:
    def __init__(self, plugin: MirrorPlugin):
        self.plugin = plugin

    def tabs(self, repo: RepoInfo) -> list[WebTab] | None:
        records = self.plugin.records
        if not records.available or (records.pull(repo.id) is None and not records.pushes(repo.id)):
            return None
        return [WebTab("mirror", "Mirror", self.page, order=80)]

    def page(self, request: WebRequest) -> str:
        repo = request.repo
        notice = ""
        if request.method == "POST":
            try:
                self.plugin.manager.pull(repo)
            except PluginError as exc:
                notice = f'<p class="notice bad" role="alert">{html_escape(exc)}</p>'
            else:
                self.plugin.scheduler.sync_now(repo)
                notice = '<p class="notice" role="status">Sync queued: reload this page to follow it.</p>'
        pull = self.plugin.records.pull(repo.id)
        out = [notice]
        if pull is not None:
            status = pull_status(pull)
            out.append("<h2>Pull mirror</h2>" + _facts(status, upstream=status["url"]))
            if request.level in ("write", "admin"):
                out.append(f'<form method="post" action="{html_escape(request.url)}">{request.csrf_field()}'
                           '<button type="submit">Sync now</button></form>')
        pushes = [push_status(p) for p in self.plugin.records.pushes(repo.id)]
        if pushes:
            out.append("<h2>Push mirrors</h2>")
            out += [_facts(p, upstream=p["url"], title=f"to {p['url']}") for p in pushes]
        out.append('<p class="muted">Mirrors are set up with <code>gitd mirror</code> or the API '
                   "(<code>PUT /api/&hellip;/mirror</code>); docs/mirrors.md.</p>")
        return "".join(out)


def _facts(status: dict[str, Any], *, upstream: str, title: str = "") -> str:
    rows = [("Upstream", upstream), ("State", status.get("state")), ("Phase", status.get("phase")),
            ("Last attempt", status.get("last_attempt")), ("Last success", status.get("last_success")),
            ("Next sync", status.get("next_run"))]
    result = status.get("last_result") or {}
    rows += [(f"Last sync: {k}", v) for k, v in sorted(result.items())]
    rows.append(("Error", status.get("last_error")))
    items = "".join(f"<dt>{html_escape(k)}</dt><dd>{html_escape(v if v not in (None, '') else '-')}</dd>"
                    for k, v in rows)
    label = f' aria-label="{html_escape(title)}"' if title else ""
    return f'<dl class="facts"{label}>{items}</dl>'
