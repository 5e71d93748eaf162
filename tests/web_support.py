"""A plain-HTTP browser for the web UI's end-to-end tests: cookies, forms with their CSRF
tokens, multipart uploads, redirects followed or not. (tests/e2e/web/test_browser.py drives
a real Chromium; this is for the many checks that need no browser.)"""

from __future__ import annotations

import contextlib
import html
import io
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar

from tests.support import Daemon

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@dataclass
class Page:
    status: int
    text: str
    headers: dict[str, str]
    url: str
    body: bytes = b""

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, f"no CSRF token on {self.url}"
        return html.unescape(found.group(1))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class WebClient:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.cookies = CookieJar()
        cookie = urllib.request.HTTPCookieProcessor(self.cookies)
        self._follow = urllib.request.build_opener(cookie)
        self._stay = urllib.request.build_opener(cookie, _NoRedirect())

    def request(self, method: str, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
                follow: bool = True) -> Page:
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        opener = self._follow if follow else self._stay
        try:
            with opener.open(req, timeout=120) as resp:
                body = resp.read()
                return Page(resp.status, body.decode("utf-8", "replace"),
                            {k.lower(): v for k, v in resp.headers.items()}, resp.url, body)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return Page(exc.code, body.decode("utf-8", "replace"), {k.lower(): v for k, v in exc.headers.items()},
                        exc.url, body)

    def get(self, path: str, *, follow: bool = True, headers: dict[str, str] | None = None) -> Page:
        return self.request("GET", path, follow=follow, headers=headers)

    def post(self, path: str, fields: dict[str, str], *, csrf: str | None = None, follow: bool = False,
             headers: dict[str, str] | None = None) -> Page:
        """A form POST; ``csrf`` None takes the token from the page at ``path`` first."""
        if csrf is None:
            csrf = self.get(path).csrf()
        data = urllib.parse.urlencode({"csrf": csrf, **fields}).encode()
        return self.request("POST", path, data=data, follow=follow,
                            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    def upload(self, path: str, files: dict[str, bytes], fields: dict[str, str] | None = None, *,
               csrf: str | None = None) -> Page:
        if csrf is None:
            csrf = self.get(path).csrf()
        boundary = "gitdtest" + secrets.token_hex(8)
        out = io.BytesIO()

        def part(name: str, value: bytes, filename: str | None = None) -> None:
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
            out.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
            if filename is not None:
                out.write(b"Content-Type: application/octet-stream\r\n")
            out.write(b"\r\n" + value + b"\r\n")

        part("csrf", csrf.encode())
        for name, value in (fields or {}).items():
            part(name, value.encode())
        for filename, content in files.items():
            part("files", content, filename)
        out.write(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, data=out.getvalue(), follow=False,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def login(self, user: str, password: str) -> Page:
        page = self.post("/login", {"username": user, "password": password})
        assert page.status == 303, (page.status, page.text[:500])
        return page

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)


def set_password(daemon: Daemon, user: str, password: str) -> None:
    """``gitd user passwd USER --stdin`` with ``password`` on its standard input."""
    saved = sys.stdin
    sys.stdin = io.StringIO(password + "\n")
    try:
        daemon.cli("user", "passwd", user, "--stdin")
    finally:
        with contextlib.suppress(Exception):
            sys.stdin = saved


def web_user(daemon: Daemon, *, password: str = "a good password") -> tuple[str, str, WebClient]:
    """A new user with a token and a password, and a client logged in as them."""
    name, token = daemon.user()
    set_password(daemon, name, password)
    client = WebClient(daemon.url)
    client.login(name, password)
    return name, token, client
