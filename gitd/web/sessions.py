"""Browser sessions and CSRF tokens for the web UI.

A session cookie holds a random id and its HMAC under the daemon's secret key
(``ID.MAC``): a forged or altered cookie is refused before the database is asked. The
database keeps only the id's SHA-256 (``web_sessions``), with the account, an expiry and
the session's CSRF token; deleting the account, changing its password or logging out
deletes the row, and the cookie stops working at once. Cookies are ``HttpOnly`` and
``SameSite=Lax``, and ``Secure`` when the daemon is reached over HTTPS (``server.public_url``
says https, or the connection is TLS).

Every form that changes something carries a CSRF token, checked on POST: the session's
token when signed in; before that (the login form) a random token in a short-lived
``SameSite=Strict`` cookie that the form must repeat (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from aiohttp import web

from gitd.access.rules import AccessLevel, Principal
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import Forbidden
from gitd.store import Account, Store
from gitd.store.sessions import SessionRow, SessionRows

SESSION_COOKIE = "gitd_session"
LOGIN_CSRF_COOKIE = "gitd_csrf"
CSRF_FIELD = "csrf"
SESSION = web.RequestKey("web_session", object)  # SessionRow | None, found once per request
LOGIN_CSRF = web.RequestKey("web_login_csrf", str)  # a login token made for this request


def _mac(key: bytes, value: str) -> str:
    digest = hmac.new(key, b"gitd-web-session:" + value.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


class CsrfFailed(Forbidden):
    code = "CsrfFailed"


class WebSessions:
    def __init__(self, store: Store, secret_key: bytes, *, ttl: float = 14 * 86400, public_url: str = "",
                 clock: Clock = SYSTEM_CLOCK):
        self.rows = SessionRows(store)
        self._key = secret_key
        self.ttl = ttl
        self.public_url = public_url
        self.clock = clock

    # -- cookies -------------------------------------------------------------------------------
    def secure(self, request: web.Request) -> bool:
        return self.public_url.startswith("https://") or request.secure

    def _set(self, request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int,
             samesite: str) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite=samesite,
                            secure=self.secure(request) or None)

    def _id_hash(self, cookie: str | None) -> str | None:
        """The stored hash of a well-formed, correctly signed session cookie's id."""
        if not cookie or len(cookie) > 200 or "." not in cookie:
            return None
        value, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(_mac(self._key, value), mac):
            return None
        return hashlib.sha256(value.encode()).hexdigest()

    # -- sessions ------------------------------------------------------------------------------
    def current(self, request: web.Request) -> SessionRow | None:
        """This request's session, looked up once per request (None when signed out)."""
        if SESSION in request:
            return request[SESSION]  # type: ignore[return-value]
        id_hash = self._id_hash(request.cookies.get(SESSION_COOKIE))
        found = self.rows.find(id_hash, self.clock.time()) if id_hash is not None else None
        request[SESSION] = found
        return found

    def principal(self, request: web.Request) -> Principal | None:
        found = self.current(request)
        if found is None:
            return None
        return Principal(account=found.account, cap=AccessLevel.ADMIN, method="session")

    def start(self, request: web.Request, response: web.StreamResponse, account: Account) -> None:
        """A new session for ``account`` (a new id at every login: no fixation), its cookie set."""
        value = secrets.token_urlsafe(32)
        now = self.clock.time()
        self.rows.add(hashlib.sha256(value.encode()).hexdigest(), account.id, secrets.token_urlsafe(24), now,
                      now + self.ttl)
        self._set(request, response, SESSION_COOKIE, f"{value}.{_mac(self._key, value)}", int(self.ttl), "Lax")
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/")

    def end(self, request: web.Request, response: web.StreamResponse) -> None:
        id_hash = self._id_hash(request.cookies.get(SESSION_COOKIE))
        if id_hash is not None:
            self.rows.delete(id_hash)
        response.del_cookie(SESSION_COOKIE, path="/")

    def clear_stale(self, request: web.Request, response: web.StreamResponse) -> None:
        """Drop a session cookie that names no live session (expired, logged out, account deleted)."""
        if request.cookies.get(SESSION_COOKIE) and self.current(request) is None:
            response.del_cookie(SESSION_COOKIE, path="/")

    # -- CSRF ----------------------------------------------------------------------------------
    def csrf_token(self, request: web.Request, response: web.StreamResponse | None = None) -> str:
        """The token forms on this page carry. Signed out, a login token in a cookie of its own
        (made once per request; set on ``response`` when the browser does not have it yet)."""
        found = self.current(request)
        if found is not None:
            return found.csrf
        token = request.cookies.get(LOGIN_CSRF_COOKIE)
        fresh = not token or len(token) > 100
        if fresh:
            token = request.get(LOGIN_CSRF)
            if token is None:
                token = request[LOGIN_CSRF] = secrets.token_urlsafe(24)
        if fresh and response is not None:
            self._set(request, response, LOGIN_CSRF_COOKIE, token, 3600, "Strict")
        return token

    def check_csrf(self, request: web.Request, submitted: str | None) -> None:
        """CsrfFailed (403) unless ``submitted`` is this browser's token (and the request, if
        it names its origin, comes from this site)."""
        origin = request.headers.get("Origin")
        if origin and origin != "null":
            host = origin.split("://", 1)[-1]
            if host != request.headers.get("Host", ""):
                raise CsrfFailed("this form was sent from another site; reload the page and try again")
        found = self.current(request)
        expected = found.csrf if found is not None else request.cookies.get(LOGIN_CSRF_COOKIE)
        if not expected or not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
            raise CsrfFailed("the form's security token is missing or out of date; reload the page and try again")
