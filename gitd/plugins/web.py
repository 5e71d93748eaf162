"""What a plugin adds to the web UI (plugin API 1.2): tabs on a repository's pages.

A plugin's ``gitd_web_tabs(repo)`` hook answers the tabs it shows for that repository
(``WebTab``). Each tab is a page at ``/{repo}/tab/PLUGIN/NAME``, drawn inside the
repository's layout (its header and the other tabs). The daemon applies its own
access check first: a repository the caller may not read is a 404 page, as anywhere
else, and the tab needs ``access`` besides (read, write or admin). A tab may take POST
forms: the daemon checks the form's CSRF token and write access before the handler
runs. Handlers are plain functions run on a worker thread; one takes a ``WebRequest``
and returns an HTML fragment (a ``str``): escape whatever came from users or
repositories with ``gitd.html_escape``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from markupsafe import escape

if TYPE_CHECKING:
    from gitd.plugins.events import RepoInfo
    from gitd.plugins.view import RepoView

Level = Literal["read", "write", "admin"]


def html_escape(value: object) -> str:
    """``value`` as text safe inside HTML (``&``, ``<``, ``>``, quotes escaped)."""
    return str(escape(value))


@dataclass(frozen=True)
class WebTab:
    """A tab on a repository's pages. ``name`` is its URL segment (letters, digits, '-', '_'),
    ``label`` what the tab shows; ``order`` places it among the other plugins' tabs (the
    daemon's own come first). ``frame_src`` lists origins the tab's page may embed in an
    ``<iframe>`` (a space's app), added to that page's Content-Security-Policy."""

    name: str
    label: str
    handler: Callable[[WebRequest], str]
    access: Level = "read"
    order: int = 100
    frame_src: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64 or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"a tab's name is 1-64 letters, digits, '-' or '_': {self.name!r}")
        if self.access not in ("read", "write", "admin"):
            raise ValueError(f"access must be read, write or admin, not {self.access!r}")


class WebRequest:
    """One request to a plugin's tab, as the daemon authenticated and checked it."""

    def __init__(self, *, method: str, query: Mapping[str, str], form: Mapping[str, str], user: str | None,
                 repo: RepoInfo, level: Level, url: str, repo_url: str, csrf_token: str,
                 view_factory: Callable[[], RepoView], find_repo: Callable[[str, str], RepoInfo | None]):
        self.method = method
        self.query = query
        self.form = form  # a POST's fields (the CSRF token already checked)
        self.user = user  # the signed-in user's name, or None
        self.repo = repo
        self.level = level  # what the caller may do with the repository
        self.url = url  # this tab's path, for links and forms
        self.repo_url = repo_url  # the repository's page, e.g. /datasets/alice/corpus
        self.csrf_token = csrf_token  # put it in a POST form as <input type="hidden" name="csrf" ...>
        self._view_factory = view_factory
        self._view: RepoView | None = None
        self._find_repo = find_repo

    @property
    def view(self) -> RepoView:
        if self._view is None:
            self._view = self._view_factory()
        return self._view

    def csrf_field(self) -> str:
        """The hidden input a POST form of this tab needs."""
        return f'<input type="hidden" name="csrf" value="{html_escape(self.csrf_token)}">'

    def readable(self, full_name: str, repo_type: str = "model") -> RepoInfo | None:
        """Repository ``ns/name`` of ``repo_type`` if the caller may read it, else None."""
        return self._find_repo(full_name, repo_type)
