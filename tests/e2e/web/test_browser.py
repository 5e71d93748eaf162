"""The web UI in a real browser: Debian's Chromium driven by Playwright (launched with the
system browser's executable; Playwright downloads nothing). Log in, create a repository,
upload files (a big one goes to Git LFS), browse them, edit one and read the diff, create
and revoke a token, change visibility, and a private repository another user never sees.
Hostile README markup and file names run no script in the browser."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import unique
from tests.web_support import set_password

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
TIMEOUT_MS = 60_000  # the suite runs on two busy cores


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium package is not installed: `sh scripts/bootstrap.sh test` installs it as root")
    with sync_playwright() as p:
        # --no-sandbox: CI runs the tests as root, where Chromium refuses its sandbox.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=TIMEOUT_MS)
        yield b
        b.close()


class Session:
    """One person's browser: their own cookies, every dialog recorded (and accepted)."""

    def __init__(self, browser: Browser, base: str, **context: object):
        self.context = browser.new_context(base_url=base, **context)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    def login(self, user: str, password: str = PASSWORD) -> Page:
        page = self.page
        page.goto("/login")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("navigation", name="Site").get_by_role("link", name=user)).to_be_visible()
        return page

    def new_repo(self, name: str, *, private: bool = False) -> Page:
        page = self.page
        page.goto("/new")
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_label("Private" if private else "Public", exact=False).check()
        page.get_by_role("button", name="Create repository").click()
        expect(page.get_by_role("heading", name="This repository is empty")).to_be_visible()
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def sessions(browser: Browser) -> Iterator:
    made: list[Session] = []

    def factory(base: str, **context: object) -> Session:
        made.append(Session(browser, base, **context))
        return made[-1]

    yield factory
    for s in made:
        s.close()


def password_user(daemon) -> str:
    name, _ = daemon.user()
    set_password(daemon, name, PASSWORD)
    return name


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_log_in_create_a_repository_upload_browse_edit_and_read_the_diff(make_daemon, sessions, git, tmp_path):
    daemon = make_daemon(settings={"hub.regular_upload_max": 4096})  # the weights go to Git LFS
    user = password_user(daemon)
    me = sessions(daemon.url)
    page = me.login(user)
    name = unique("web")
    me.new_repo(name)
    assert page.url == f"{daemon.url}/{user}/{name}"

    # Upload two files from the browser: a script, and weights big enough for Git LFS.
    (tmp_path / "app.py").write_text("def greet():\n    return 'hello'\n")
    weights = bytes(range(256)) * 64  # 16 KiB
    (tmp_path / "model.bin").write_bytes(weights)
    page.get_by_role("link", name="upload files").click()
    page.get_by_label("Files").set_input_files([str(tmp_path / "app.py"), str(tmp_path / "model.bin")])
    page.get_by_label("Commit message").fill("First files from the browser")
    page.get_by_role("button", name="Commit").click()
    expect(page.get_by_role("heading", name="First files from the browser")).to_be_visible()
    first = re.search(r"/commit/([0-9a-f]{40})$", page.url)
    assert first, page.url
    # The commit's page summarises the LFS file and shows the new script's lines.
    expect(page.get_by_role("region", name="app.py")).to_contain_text("def greet():")
    expect(page.get_by_role("region", name="model.bin")).to_contain_text("Git LFS file")

    # Browse: the tree, the highlighted file, the LFS file's facts and its download.
    page.get_by_role("link", name="Browse files").click()
    expect(page.get_by_role("link", name="model.bin")).to_be_visible()
    expect(page.get_by_role("cell", name="model.bin LFS")).to_be_visible()
    page.get_by_role("link", name="app.py").click()
    code = page.get_by_label("app.py", exact=True)
    expect(code).to_contain_text("return 'hello'")
    assert code.locator("span.k", has_text="def").count() == 1  # Pygments' token classes
    page.go_back()
    page.get_by_role("link", name="model.bin").click()
    lfs = page.get_by_role("region", name="Git LFS")
    expect(lfs).to_contain_text(hashlib.sha256(weights).hexdigest())
    with page.expect_download() as started:
        lfs.get_by_role("link", name="Download").click()
    assert Path(started.value.path()).read_bytes() == weights

    # Edit the script in the browser: a real commit whose diff the browser shows.
    page.goto(f"/{user}/{name}/blob/main/app.py")
    page.get_by_role("link", name="Edit").click()
    page.locator("textarea").fill("def greet():\n    return 'good morning'\n")
    page.get_by_role("button", name=re.compile("Commit")).click()
    expect(page.get_by_label("app.py", exact=True)).to_contain_text("good morning")
    page.get_by_role("link", name=re.compile("^[0-9a-f]{7}$")).first.click()
    diff = page.get_by_role("region", name="app.py")
    expect(diff.locator("tr.del")).to_contain_text("-    return 'hello'")
    expect(diff.locator("tr.add")).to_contain_text("+    return 'good morning'")

    # What the browser committed is what git clones: through the hook chain, LFS pointer and all.
    clone = tmp_path / "clone"
    env_token = daemon.cli("token", "create", user, "--name", unique("tok"))[1].strip()
    git("clone", "-q", daemon.repo_url(f"{user}/{name}", token=env_token), str(clone),
        env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert (clone / "app.py").read_text() == "def greet():\n    return 'good morning'\n"
    assert f"oid sha256:{hashlib.sha256(weights).hexdigest()}" in (clone / "model.bin").read_text()
    assert "/model.bin filter=lfs" in (clone / ".gitattributes").read_text()
    log = git.out("log", "--format=%s", cwd=clone).splitlines()
    assert log == ["Update app.py", "First files from the browser"]
    assert me.dialogs == []


def test_tokens_are_created_with_a_scope_shown_once_and_revoked(daemon, sessions):
    user = password_user(daemon)
    me = sessions(daemon.url)
    page = me.login(user)
    page.get_by_role("link", name="Settings").click()
    token_name = unique("laptop")
    page.get_by_label("Name").fill(token_name)
    page.get_by_label("Scope").select_option("write")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Your new token").input_value()
    assert secret.startswith("gitd_")
    row = page.get_by_role("row", name=re.compile(token_name))
    expect(row).to_contain_text("write")
    status, body = fetch(f"{daemon.url}/api/whoami-v2", secret)
    assert status == 200 and json.loads(body)["name"] == user
    page.reload()
    expect(page.get_by_label("Your new token")).to_have_count(0)  # shown once only
    row.get_by_role("button", name="Revoke").click()  # asks first; the dialog is accepted
    expect(page.get_by_role("row", name=re.compile(token_name))).to_have_count(0)
    assert me.dialogs and token_name in me.dialogs[0]
    assert fetch(f"{daemon.url}/api/whoami-v2", secret)[0] == 401


def test_a_private_repository_is_unseen_by_another_user_until_made_public(daemon, sessions, tmp_path):
    owner, other = password_user(daemon), password_user(daemon)
    mine = sessions(daemon.url)
    page = mine.login(owner)
    name = unique("hidden")
    mine.new_repo(name, private=True)
    expect(page.locator(".repo-head .private")).to_be_visible()
    (tmp_path / "notes.txt").write_text("the secret recipe\n")
    page.get_by_role("link", name="upload files").click()
    page.get_by_label("Files").set_input_files(str(tmp_path / "notes.txt"))
    page.get_by_role("button", name="Commit").click()
    expect(page.get_by_role("region", name="notes.txt")).to_contain_text("the secret recipe")

    theirs = sessions(daemon.url)
    seen = theirs.login(other)
    for path in ("", "/tree/main", "/blob/main/notes.txt", "/raw/main/notes.txt", "/settings"):
        response = seen.goto(f"/{owner}/{name}{path}")
        assert response is not None and response.status == 404, path
        expect(seen.get_by_role("heading", name="Not found")).to_be_visible()
        assert "secret recipe" not in seen.content()
    seen.goto(f"/search?q={name}")
    expect(seen.get_by_role("link", name=f"{owner}/{name}")).to_have_count(0)
    anonymous = sessions(daemon.url)
    assert anonymous.page.goto(f"/{owner}/{name}").status == 404

    # The owner makes it public in its settings; now the other user reads it.
    page.goto(f"/{owner}/{name}/settings")
    page.get_by_label("Public", exact=True).check()
    page.get_by_role("button", name="Change visibility").click()
    expect(page.get_by_role("status")).to_contain_text("now public")
    assert seen.goto(f"/{owner}/{name}/blob/main/notes.txt").status == 200
    expect(seen.get_by_label("notes.txt", exact=True)).to_contain_text("the secret recipe")
    # Settings stay the owner's.
    assert seen.goto(f"/{owner}/{name}/settings").status == 403


HOSTILE_README = """# Card

<script>window.__pwned = "script"</script>
<img src="x" onerror="window.__pwned = 'onerror'">
[click me](javascript:window.__pwned='link')
<a href="javascript:window.__pwned='raw-link'">raw link</a>
<svg><script>window.__pwned = "svg"</script></svg>
<iframe src="javascript:window.__pwned='iframe'"></iframe>
<form action="/settings/tokens" method="post"><button>form</button></form>
<style>body { display: none }</style>
"""


def test_hostile_markdown_and_file_names_run_nothing_in_the_browser(daemon, sessions, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    evil_name = '<img src=x onerror="window.__pwned=1">.txt'
    work = git.init_work(tmp_path / "w", {"README.md": HOSTILE_README, evil_name: "<script>window.__pwned=2</script>",
                                          "page.html": "<script>window.__pwned=3</script>"})
    git("push", "-q", daemon.repo_url(repo, token=token), "main", cwd=work)
    reader = sessions(daemon.url)
    page = reader.page
    page.goto(f"/{repo}")
    expect(page.get_by_role("heading", name="Card")).to_be_visible()
    readme = page.get_by_role("article", name="README")
    for text in ("click me", "raw link"):
        link = readme.get_by_text(text)
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        assert href is None or not href.lower().startswith("javascript"), href
        link.click()
    assert readme.locator("script, iframe, form, style, svg, [onerror]").count() == 0
    page.goto(f"/{repo}/tree/main")
    expect(page.get_by_role("link", name=evil_name)).to_be_visible()  # shown as text
    page.get_by_role("link", name=evil_name).click()
    expect(page.get_by_role("strong").filter(has_text=evil_name)).to_be_visible()
    page.goto(f"/{repo}/raw/main/page.html")  # raw files are plain text in a sandbox
    assert page.evaluate("document.contentType") == "text/plain"
    for url in (f"/{repo}", f"/{repo}/tree/main", f"/{repo}/blob/main/README.md"):
        page.goto(url)
        assert page.evaluate("window.__pwned") is None, url
    assert reader.dialogs == []


def test_pages_fit_a_phone_screen(daemon, sessions, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w", {"README.md": "# Phone\n\n" + "word " * 400, "src/a_rather_long_file_name.py":
                                          "x = '" + "y" * 300 + "'\n"})
    git("push", "-q", daemon.repo_url(repo, token=token), "main", cwd=work)
    phone = sessions(daemon.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    for url in (f"/{repo}", f"/{repo}/tree/main/src", "/models", "/login"):
        phone.page.goto(url)
        # No sideways scrolling of the page itself (long code scrolls inside its own box).
        assert phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url


SPACE_SCRIPT = """
let seen;
try { seen = "the hub's page: " + parent.document.title; } catch (e) { seen = "isolated"; }
document.getElementById("out").textContent = seen;
"""


def test_a_spaces_app_runs_in_its_tab_isolated_from_the_hubs_page(daemon, sessions, git, tmp_path):
    user = password_user(daemon)
    _, token, _ = daemon.cli("token", "create", user, "--scope", "write", "--name", unique("t"))
    space = daemon.repo(user, unique("sp"), repo_type="space")
    work = git.init_work(tmp_path / "w", {"README.md": "---\nsdk: static\n---\n# s\n", "app.js": SPACE_SCRIPT,
                                          "index.html": '<h1>static space</h1><p id="out"></p>'
                                                        '<script src="app.js"></script>'})
    git("push", "-q", daemon.repo_url(space, token=token.strip(), repo_type="space"), "main", cwd=work)
    owner = sessions(daemon.url)
    page = owner.login(user)
    deadline = 60
    for _ in range(deadline * 2):  # the static app is built by a job
        page.goto(f"/spaces/{space}/tab/spaces/app")
        if page.locator("iframe.space-app").count():
            break
        page.wait_for_timeout(500)
    app = page.frame_locator("iframe.space-app")
    expect(app.get_by_role("heading", name="static space")).to_be_visible()
    expect(app.locator("#out")).to_have_text("isolated")  # its script ran, in an origin of its own
    expect(page.get_by_role("heading", name="Build log")).to_be_visible()
    assert owner.dialogs == []
