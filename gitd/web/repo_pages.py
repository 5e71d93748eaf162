"""A repository's own pages: its card (README rendered, front matter as facts), the file
tree at any branch, tag or commit (a page at a time), file views and raw files."""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any
from urllib.parse import quote

import pygit2
from aiohttp import web

from gitd.errors import NotFound
from gitd.http.context import base_url
from gitd.http.routing import Match, Router
from gitd.hub.bounded_cache import BoundedCache
from gitd.hub.files import FileView, HubFiles
from gitd.hub.gitread import Entry, RevisionNotFound
from gitd.hub.info import CardCache
from gitd.plugins.fields import InfoFields
from gitd.web.blobs import decode, read_head
from gitd.web.core import RepoPage, WebCore, page_handler
from gitd.web.facts import card_facts
from gitd.web.highlight import MARKDOWN_EXTENSIONS, image_type, is_binary, render_text
from gitd.web.markdown import render_markdown, strip_front_matter

README_MAX = 1024 * 1024
RAW_HEADERS = {"X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"}


def rev_url(rev: str) -> str:
    return quote(rev, safe="")


class RepoPages:
    def __init__(self, core: WebCore, view: FileView, files: HubFiles, cards: CardCache, fields: InfoFields | None):
        self.core = core
        self.view = view
        self.files = files
        self.cards = cards
        self.fields = fields
        self._readmes: BoundedCache[tuple[str, bool]] = BoundedCache(16 * 1024 * 1024)

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}", self.card, name="web-repo")
        router.add("GET", "/{repo}/tree/{rev}/{path*}", self.tree, name="web-tree")
        router.add("GET", "/{repo}/blob/{rev}/{path*}", self.blob, name="web-blob")
        router.add("GET", "/{repo}/raw/{rev}/{path*}", self.raw, name="web-raw")
        router.add("GET", "/{repo}/go", self.go, name="web-go")

    @page_handler
    async def go(self, request: web.Request, m: Match) -> web.StreamResponse:
        """Where the revision picker's form leads (it works without JavaScript)."""
        page = self.core.repo(request, m)
        kind = "commits" if request.query.get("kind") == "commits" else "tree"
        rev = request.query.get("rev") or page.repo.default_branch
        path = request.query.get("path", "").strip("/") if kind == "tree" else ""
        raise web.HTTPSeeOther(f"{page.url}/{kind}/{rev_url(rev)}" + (f"/{quote(path)}" if path else ""))

    # -- shared ------------------------------------------------------------------------------
    def base(self, request: web.Request, page: RepoPage, tab: str, **values: Any) -> dict[str, Any]:
        return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, tab), **values}

    def refs(self, page: RepoPage) -> dict[str, list[str]]:
        reader = self.core.reader
        return {"branches": [n[len("refs/heads/"):] for n, _ in reader.refs(page.path, "refs/heads/")][:500],
                "tags": [n[len("refs/tags/"):] for n, _ in reader.refs(page.path, "refs/tags/")][:500]}

    def readme_html(self, page: RepoPage, commit: str, entry: Entry, rev: str) -> tuple[str, bool]:
        key = (str(page.path), entry.oid, rev)
        found = self._readmes.get(key)
        if found is None:
            text = decode(self.core.reader.read_blob(page.path, entry.oid), cut=False)
            base = f"{page.url}/blob/{rev_url(rev)}"
            found = render_markdown(strip_front_matter(text), link_base=base, raw_base=f"{page.url}/raw/{rev_url(rev)}",
                                    base_dir=posixpath.dirname(entry.path))
            self._readmes.put(key, found, len(found[0]) + 200)
        return found

    # -- the card ------------------------------------------------------------------------------
    @page_handler
    async def card(self, request: web.Request, m: Match) -> web.StreamResponse:
        assert m.repo is not None
        if m.repo.git_suffix:
            raise web.HTTPMovedPermanently("/" + str(m.repo))
        page = self.core.repo(request, m)
        clone = f"{base_url(request, self.core.settings.public_url)}{page.url}.git"

        def build() -> dict[str, Any]:
            reader = self.core.reader
            commit = reader.default_head(page.path, page.repo.default_branch)
            branch = page.repo.default_branch
            readme, cut, card, last = None, False, {}, None
            if commit is not None:
                entry = reader.entry(page.path, commit, "README.md")
                if entry is not None and entry.kind == "file" and entry.pointer is None and entry.size <= README_MAX:
                    readme, cut = self.readme_html(page, commit, entry, branch)
                card = self.cards.card(page.path, commit, page.repo.full_name) or {}
                c = reader.commit(page.path, commit)
                last = {"id": commit, "title": c.message.split("\n", 1)[0], "author": c.author.name,
                        "time": c.commit_time}
            fields: dict[str, Any] = {}
            if self.fields is not None and self.fields.active():
                fields = self.fields.add(page.info, commit, {})
            return self.base(request, page, "card", commit=commit, branch=branch, readme=readme, readme_cut=cut,
                             facts=card_facts(card, fields), last=last, clone=clone)

        return await self.core.page(request, "repo/card.html", build)

    # -- the tree ------------------------------------------------------------------------------
    def _resolve(self, page: RepoPage, rev: str) -> str:
        try:
            return self.core.reader.resolve(page.path, rev)
        except RevisionNotFound:
            raise NotFound(f"{page.repo.full_name} has no branch, tag or commit {rev[:100]!r}")

    @page_handler
    async def tree(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        rev, under = m.params["rev"], m.params["path"].strip("/")
        after = request.query.get("after") or None
        size = self.core.settings.tree_page

        def build() -> dict[str, Any]:
            reader = self.core.reader
            commit = reader.try_resolve(page.path, rev)
            if commit is None:
                if rev == page.repo.default_branch and not under and not reader.refs(page.path, "refs/heads/"):
                    return self.base(request, page, "files", rev=rev, empty=True, under="", crumbs=[], rows=[],
                                     refs={"branches": [], "tags": []}, more=None, count=0, commit=None)
                raise NotFound(f"{page.repo.full_name} has no branch, tag or commit {rev[:100]!r}")
            if under:
                entry = reader.entry(page.path, commit, under)
                if entry is None or entry.kind != "directory":
                    raise NotFound(f"no folder {under[:200]!r} at {rev[:100]!r}")
            tree = reader.open(page.path)[commit].peel(pygit2.Tree)
            count = len(tree[under]) if under else len(tree)
            walk = reader.walk(page.path, commit, under, recursive=False, limit=size, after=after)
            base = f"{page.url}/%s/{rev_url(rev)}/"
            rows = []
            for e in walk.entries:
                if e is None:
                    continue
                name = e.path.rsplit("/", 1)[-1]
                kind = "tree" if e.kind == "directory" else "blob"
                rows.append({"name": name, "dir": e.kind == "directory", "url": base % kind + quote(e.path),
                             "size": e.pointer.size if e.pointer is not None else e.size,
                             "lfs": e.pointer is not None})
            more = None
            if walk.more and walk.resume:
                more = f"{base % 'tree'}{quote(under)}?after={quote(walk.resume)}"
            return self.base(request, page, "files", rev=rev, commit=commit, empty=False, under=under,
                             crumbs=self.crumbs(page, rev, under), rows=rows, more=more, count=count,
                             refs=self.refs(page), first=after is not None)

        return await self.core.page(request, "repo/tree.html", build)

    def crumbs(self, page: RepoPage, rev: str, path: str) -> list[dict[str, str]]:
        out = [{"name": page.repo.name, "url": f"{page.url}/tree/{rev_url(rev)}"}]
        done: list[str] = []
        for part in [p for p in path.split("/") if p]:
            done.append(part)
            out.append({"name": part, "url": f"{page.url}/tree/{rev_url(rev)}/{quote('/'.join(done))}"})
        return out

    # -- one file ------------------------------------------------------------------------------
    @page_handler
    async def blob(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        rev, file_path = m.params["rev"], m.params["path"].strip("/")
        settings = self.core.settings
        plain = request.query.get("plain") == "1"

        def build() -> dict[str, Any]:
            reader = self.core.reader
            commit = self._resolve(page, rev)
            entry = reader.entry(page.path, commit, file_path) if file_path else None
            if entry is None:
                raise NotFound(f"no file {file_path[:200]!r} at {rev[:100]!r}")
            if entry.kind == "directory":
                raise web.HTTPFound(f"{page.url}/tree/{rev_url(rev)}/{quote(file_path)}")
            raw = f"{page.url}/raw/{rev_url(rev)}/{quote(file_path)}"
            out = self.base(request, page, "files", rev=rev, commit=commit, path=file_path, raw=raw,
                            crumbs=self.crumbs(page, rev, posixpath.dirname(file_path)),
                            name=posixpath.basename(file_path), size=entry.size, lfs=None, image=None, text=None,
                            markdown=None, binary=False, truncated=False, editable=False,
                            edit=f"{page.url}/edit/{rev_url(rev)}/{quote(file_path)}")
            if entry.pointer is not None:
                held = self.view.held_size(page.repo.id, entry.pointer.oid)
                out["lfs"] = {"oid": entry.pointer.oid, "size": entry.pointer.size, "held": held is not None,
                              "pointer_size": entry.size}
                out["size"] = entry.pointer.size
                if held is not None and image_type(file_path):
                    out["image"] = raw
                return out
            if image_type(file_path):
                out["image"] = raw
                return out
            data = read_head(reader, page.path, entry.oid, entry.size, settings.max_view)
            if is_binary(data):
                out["binary"] = True
                return out
            out["truncated"] = entry.size > len(data)
            text = decode(data, cut=out["truncated"])
            out["editable"] = page.can_write and entry.size <= settings.max_edit and \
                reader.head(page.path, f"refs/heads/{rev}") is not None
            if file_path.lower().endswith(MARKDOWN_EXTENSIONS) and not plain:
                out["markdown"] = render_markdown(strip_front_matter(text) if file_path == "README.md" else text,
                                                  link_base=f"{page.url}/blob/{rev_url(rev)}",
                                                  raw_base=f"{page.url}/raw/{rev_url(rev)}",
                                                  base_dir=posixpath.dirname(file_path))[0]
            else:
                out["text"] = render_text(text, file_path, max_highlight=settings.max_highlight)
            return out

        return await self.core.page(request, "repo/blob.html", build)

    @page_handler
    async def raw(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        rev, file_path = m.params["rev"], m.params["path"].strip("/")
        reader = self.core.reader
        commit = self._resolve(page, rev)
        entry = reader.entry(page.path, commit, file_path) if file_path else None
        if entry is None or entry.kind != "file":
            raise NotFound(f"no file {file_path[:200]!r} at {rev[:100]!r}")
        image = image_type(file_path)
        if entry.pointer is not None or entry.size > self.core.settings.max_view or request.query.get("download"):
            # Git LFS objects and big files stream as /resolve sends them (with Range), as the
            # caller this page already authenticated (a browser session counts).
            return await self.files.resolve(request, m)
        data = await asyncio.to_thread(reader.read_blob, page.path, entry.oid)
        if image:
            ctype = image
        elif is_binary(data):
            ctype = "application/octet-stream"
        else:
            ctype = "text/plain; charset=utf-8"
        headers = {**RAW_HEADERS, "Content-Type": ctype, "ETag": f'"{entry.oid}"',
                   "Cache-Control": "private, max-age=0, must-revalidate"}
        return web.Response(body=data, headers=headers)
