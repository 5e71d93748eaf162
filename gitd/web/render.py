"""Templates and static files of the web UI.

Templates are Jinja2 files shipped in the package (``gitd/web/templates``), with
autoescaping on: every value is escaped unless it is ``Markup`` made by gitd's own
renderers (sanitised Markdown, highlighted code). Static files (CSS, the little
JavaScript the pages use, Pygments' colours) are read once and served from memory with
a content hash in their URL, so browsers cache them for good.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

from gitd.errors import NotFound
from gitd.web.highlight import pygments_css

# Every HTML page: scripts and styles only from this site, no plugins, never framed.
CSP = ("default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; frame-src {frames}")
HTML_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


def filesize(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


def date(value: str | int | float | None) -> str:
    """An ISO timestamp or Unix time as 'YYYY-MM-DD HH:MM' UTC."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")
    return str(value)[:16].replace("T", " ")


def path_quote(path: str) -> str:
    """A repository path as it goes into a URL (every segment percent-encoded, slashes kept)."""
    return quote(path, safe="/")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


class StaticFiles:
    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        root = resources.files("gitd.web").joinpath("static")
        files = {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}
        files["pygments.css"] = pygments_css().encode()
        for name, body in files.items():
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            self.assets[name] = Asset(body, ctype, hashlib.sha256(body).hexdigest()[:16])

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.assets[name].etag}"

    async def serve(self, request: web.Request, name: str) -> web.Response:
        asset = self.assets.get(name)
        if asset is None:
            raise NotFound("no such file")
        cache = "public, max-age=31536000, immutable" if request.query.get("v") == asset.etag else "no-cache"
        headers = {"ETag": f'"{asset.etag}"', "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("If-None-Match") == f'"{asset.etag}"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


class Renderer:
    def __init__(self, *, site_name: str = "gitd") -> None:
        self.static = StaticFiles()
        self.site_name = site_name
        self.env = Environment(loader=PackageLoader("gitd.web", "templates"), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
        self.env.filters.update(filesize=filesize, date=date, q=path_quote)
        self.env.globals.update(static=self.static.url, site_name=site_name)

    def render(self, template: str, context: dict[str, Any]) -> str:
        return self.env.get_template(template).render(context)

    @staticmethod
    def response(html: str, *, status: int = 200, frames: tuple[str, ...] = ()) -> web.Response:
        headers = {**HTML_HEADERS, "Content-Security-Policy": CSP.format(frames=" ".join(frames) or "'none'"),
                   "Cache-Control": "private, no-cache"}
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=headers)
