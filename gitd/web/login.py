"""Logging in with a user name and password (a new browser session), logging out, and the
login rate limit: failed and successful attempts alike spend a token per client address
and per user name (``[web] login_attempts`` per ``login_window`` seconds), so guessing
is slow from one address and against one account."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web

from gitd.access.passwords import Passwords
from gitd.errors import TooManyRequests
from gitd.http.routing import Match, Router
from gitd.limits.rates import TokenBuckets
from gitd.web.core import WebCore, page_handler


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or \
            any(ord(c) < 32 for c in target):
        return "/"
    return target


class LoginLimiter:
    def __init__(self, attempts: int, window: float, *, max_keys: int = 100_000):
        rate = attempts / window if window > 0 else 0.0
        self.by_address = TokenBuckets(rate, attempts, max_keys)
        self.by_user = TokenBuckets(rate, attempts, max_keys)

    def take(self, address: str | None, user: str) -> float:
        """0.0 when the attempt may go ahead, else the seconds to wait."""
        return max(self.by_address.take(address or "-"), self.by_user.take(user.lower()))


class LoginPages:
    def __init__(self, core: WebCore, passwords: Passwords, limiter: LoginLimiter):
        self.core = core
        self.passwords = passwords
        self.limiter = limiter

    def add_routes(self, router: Router) -> None:
        router.add(("GET", "POST"), "/login", self.login, name="web-login")
        router.add("POST", "/logout", self.logout, name="web-logout")

    def _form(self, request: web.Request, *, status: int = 200, error: str | None = None, name: str = "",
              target: str = "/") -> web.Response:
        html = self.core.render(request, "login.html", error=error, name=name, next=target)
        return self.core.respond(request, html, status=status)

    @page_handler
    async def login(self, request: web.Request, m: Match) -> web.StreamResponse:
        if request.method == "GET":
            target = safe_next(request.query.get("next"))
            if self.core.who(request).method == "session":
                raise web.HTTPSeeOther(target)
            return self._form(request, target=target)
        form: dict[str, Any] = await self.core.form(request, limit=16 * 1024)
        name, password = form.get("username", "").strip(), form.get("password", "")
        target = safe_next(form.get("next"))
        wait = self.limiter.take(request.remote, name)
        if wait > 0:
            raise TooManyRequests(f"too many login attempts; try again in {math.ceil(wait)} seconds",
                                  retry_after=max(1, math.ceil(wait)))
        account = await asyncio.to_thread(self.passwords.check, name, password)
        if account is None:
            return self._form(request, status=401, error="Wrong user name or password.", name=name, target=target)
        response = web.HTTPSeeOther(target)
        self.core.sessions.start(request, response, account)
        raise response

    @page_handler
    async def logout(self, request: web.Request, m: Match) -> web.StreamResponse:
        await self.core.form(request, limit=4096)
        response = web.HTTPSeeOther("/")
        self.core.sessions.end(request, response)
        raise response
