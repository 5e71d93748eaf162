"""The spaces plugin's tab on a space's web pages (``gitd_web_tabs``, plugin API 1.2).

``/spaces/NS/NAME/tab/spaces/app``: the running app embedded (an ``<iframe>`` of
``/spaces/NS/NAME/app/``, sandboxed: the app's scripts run, but in an origin of their
own, so they cannot act as the signed-in user on the hub's pages), its runtime stage and
error, and for writers (as the logs API: write access) the tail of its build and run
logs and a restart button (a POST form with the CSRF token; the restart is queued for
the daemon's workers, as ``gitd spaces restart`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitd.plugin_api import RepoInfo, WebRequest, WebTab, html_escape

from .state import APP_STARTING, BUILDING, RUNNING, SLEEPING

if TYPE_CHECKING:
    from .plugin import SpacesPlugin

LOG_TAIL = 16 * 1024  # bytes of each log shown
EMBEDDED = (RUNNING, SLEEPING, APP_STARTING)  # a sleeping app wakes on the iframe's request
SANDBOX = "allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-downloads allow-modals"


class SpaceTab:
    def __init__(self, plugin: SpacesPlugin):
        self.plugin = plugin

    def tabs(self, repo: RepoInfo) -> list[WebTab] | None:
        if repo.type != "space":
            return None
        return [WebTab("app", "Running app", self.page, order=30, frame_src=("'self'",))]

    def page(self, request: WebRequest) -> str:
        repo = request.repo
        notice = ""
        if request.method == "POST":
            if request.form.get("action") == "restart":
                self.plugin.context.submit(repo, "restart", {}, key=f"restart:{repo.id}")
                notice = '<p class="notice" role="status">Restart queued: the page shows the new stage shortly.</p>'
            else:
                notice = '<p class="notice bad" role="alert">Unknown action.</p>'
        row = self.plugin.states.get(repo.id)
        if row is not None and row.runtime == "kubernetes" and self.plugin.settings.runtime == "kubernetes":
            try:  # the Space resource's status, as the runtime API reads it
                row = self.plugin.kube.refresh(repo)
            except Exception as exc:  # the cluster unreachable: show what is known
                self.plugin.context.log.warning("space %s: cannot read its Space resource: %s", repo.full_name, exc)
        runtime = self.plugin.runtime(row)
        stage = str(runtime["stage"])
        app = f"/spaces/{repo.full_name}/app/"
        out = [notice, f'<p>Stage: <span class="badge stage">{html_escape(stage)}</span>']
        if runtime.get("sdk"):
            out.append(f' <span class="muted">{html_escape(runtime["sdk"])}</span>')
        if runtime.get("commit"):
            out.append(f' <span class="muted mono">{html_escape(str(runtime["commit"])[:12])}</span>')
        out.append("</p>")
        if runtime.get("errorMessage"):
            out.append(f'<p class="notice bad">{html_escape(runtime["errorMessage"])}</p>')
        if stage in EMBEDDED:
            out.append(f'<p><a href="{html_escape(app)}" target="_blank" rel="noopener">Open the app in its own '
                       f'page</a></p><iframe class="space-app" src="{html_escape(app)}" sandbox="{SANDBOX}" '
                       f'title="{html_escape(repo.full_name)}" loading="lazy"></iframe>')
        elif stage == BUILDING:
            out.append('<p class="muted">The app is being built; reload this page in a moment.</p>')
        elif row is None:
            out.append('<p class="muted">Nothing runs here yet: push an app (a README.md with <code>sdk:</code> '
                       "and its files) to the default branch.</p>")
        if request.level in ("write", "admin"):
            out.append(f'<form method="post" action="{html_escape(request.url)}" class="inline">'
                       f'{request.csrf_field()}<input type="hidden" name="action" value="restart">'
                       '<button type="submit">Restart</button></form>')
            for kind, title in (("build", "Build log"), ("run", "Run log")):
                text = self.plugin.runner.log(repo.id, kind).tail(LOG_TAIL).decode("utf-8", "replace")
                body = html_escape(text) if text else '<span class="muted">empty</span>'
                out.append(f'<h2>{title}</h2><pre class="log" aria-label="{title}">{body}</pre>')
        return "".join(out)
