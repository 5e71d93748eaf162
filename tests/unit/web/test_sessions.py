"""Browser sessions: signed cookies naming server-side rows, CSRF tokens on every form."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gitd.access.passwords import Passwords
from gitd.clock import ManualClock
from gitd.store import Accounts, Store
from gitd.web.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, CsrfFailed, WebSessions

KEY = b"k" * 32


@pytest.fixture
def setup(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    clock = ManualClock()
    yield store, Accounts(store), WebSessions(store, KEY, ttl=3600, clock=clock), clock
    store.close()


def request(cookies: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> web.Request:
    all_headers = {"Host": "hub.example", **(headers or {})}
    if cookies:
        all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return make_mocked_request("POST", "/settings/tokens", headers=all_headers)


def login(sessions: WebSessions, account) -> tuple[str, web.Response]:
    response = web.Response()
    sessions.start(request(), response, account)
    cookie = response.cookies[SESSION_COOKIE]
    return cookie.value, response


def test_a_session_cookie_is_httponly_lax_and_names_its_account(setup):
    store, accounts, sessions, _ = setup
    alice = accounts.create_user("alice")
    value, response = login(sessions, alice)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert not morsel["secure"]  # plain HTTP here; see the next test
    who = sessions.principal(request({SESSION_COOKIE: value}))
    assert who is not None and who.account == alice and who.method == "session"
    # Only the id's hash is stored.
    stored = store.db.execute("SELECT id_hash FROM web_sessions").fetchone()[0]
    assert value.split(".")[0] not in stored


def test_cookies_are_secure_when_the_public_url_is_https(setup, tmp_path):
    store, accounts, _, clock = setup
    sessions = WebSessions(store, KEY, public_url="https://hub.example", clock=clock)
    _, response = login(sessions, accounts.create_user("bob"))
    assert response.cookies[SESSION_COOKIE]["secure"]


def test_forged_expired_and_logged_out_cookies_are_nobody(setup):
    _, accounts, sessions, clock = setup
    alice = accounts.create_user("alice")
    value, _ = login(sessions, alice)
    ident, _, mac = value.rpartition(".")
    for forged in (f"{ident}.{'A' * len(mac)}", f"{ident[:-1]}x.{mac}", ident, "", "." * 300):
        assert sessions.principal(request({SESSION_COOKIE: forged})) is None
    clock.advance(3601)
    assert sessions.principal(request({SESSION_COOKIE: value})) is None
    clock.advance(-3601)
    assert sessions.principal(request({SESSION_COOKIE: value})) is not None
    sessions.end(request({SESSION_COOKIE: value}), web.Response())
    assert sessions.principal(request({SESSION_COOKIE: value})) is None


def test_a_deleted_users_cookie_is_nobody_and_is_cleared(setup):
    store, accounts, sessions, _ = setup
    carol = accounts.create_user("carol")
    value, _ = login(sessions, carol)
    store.db.execute("DELETE FROM accounts WHERE id = ?", [carol.id])
    req = request({SESSION_COOKIE: value})
    assert sessions.principal(req) is None
    response = web.Response()
    sessions.clear_stale(req, response)
    assert response.cookies[SESSION_COOKIE]["max-age"] == "0"


def test_a_new_password_ends_the_users_sessions(setup):
    _, accounts, sessions, _ = setup
    dave = accounts.create_user("dave")
    value, _ = login(sessions, dave)
    Passwords(accounts, n=1 << 10).set(dave, "a new password")
    assert sessions.principal(request({SESSION_COOKIE: value})) is None


def test_csrf_tokens_are_per_session_and_forged_ones_refused(setup):
    _, accounts, sessions, _ = setup
    erin = accounts.create_user("erin")
    value, _ = login(sessions, erin)
    req = request({SESSION_COOKIE: value})
    token = sessions.csrf_token(req)
    sessions.check_csrf(req, token)
    for forged in (None, "", token[:-1], token + "x", "x" * len(token)):
        with pytest.raises(CsrfFailed):
            sessions.check_csrf(request({SESSION_COOKIE: value}), forged)
    # Another session's token does not do.
    other, _ = login(sessions, erin)
    with pytest.raises(CsrfFailed):
        sessions.check_csrf(request({SESSION_COOKIE: other}), token)
    # A form sent from another site is refused even with the right token.
    with pytest.raises(CsrfFailed, match="another site"):
        sessions.check_csrf(request({SESSION_COOKIE: value}, {"Origin": "https://evil.example"}), token)
    sessions.check_csrf(request({SESSION_COOKIE: value}, {"Origin": "http://hub.example"}), token)


def test_the_login_form_token_is_a_double_submitted_cookie(setup):
    _, _, sessions, _ = setup
    first = request()
    response = web.Response()
    token = sessions.csrf_token(first)
    assert sessions.csrf_token(first, response) == token  # one token per request, rendered and set alike
    morsel = response.cookies[LOGIN_CSRF_COOKIE]
    assert morsel.value == token and morsel["samesite"] == "Strict" and morsel["httponly"]
    sessions.check_csrf(request({LOGIN_CSRF_COOKIE: token}), token)
    with pytest.raises(CsrfFailed):
        sessions.check_csrf(request({LOGIN_CSRF_COOKIE: token}), "guess")
    with pytest.raises(CsrfFailed):
        sessions.check_csrf(request(), token)  # no cookie: the form came from elsewhere
