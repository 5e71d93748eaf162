"""What the web UI's forms change, over plain HTTP against a real daemon: CSRF on every form,
sessions that end, discussions and pull requests, branches and tags through the hook
chain, repository settings; and big inputs (a 50 MB text file, a folder of 100,000 files)."""

from __future__ import annotations

import hashlib
import re
import subprocess

from tests.support import unique
from tests.web_support import WebClient, set_password, web_user


def push(daemon, git, work, full_name, token, *refs):
    git("push", "-q", daemon.repo_url(full_name, token=token), *(refs or ("main",)), cwd=work)


def remote_refs(daemon, git, full_name, token) -> dict[str, str]:
    out = git.out("ls-remote", daemon.repo_url(full_name, token=token))
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def test_every_form_refuses_a_forged_or_missing_csrf_token_and_changes_nothing(daemon, git, tmp_path):
    user, token, web = web_user(daemon)
    repo = daemon.repo(user)
    push(daemon, git, git.init_work(tmp_path / "w", {"a.txt": "a\n"}), repo, token)
    _, _, other = web_user(daemon)
    theirs = other.get("/settings/tokens").csrf()  # a real token, of another session
    name = unique("made")
    opened = web.post(f"/{repo}/discussions/new", {"title": "a real one", "description": "first"})
    assert opened.status == 303
    discussion = opened.location
    for forged in ("", "forged", theirs):
        assert web.post(f"/{repo}/discussions/new", {"title": name, "description": "x"}, csrf=forged).status == 403
        assert web.post(discussion, {"action": "comment", "body": name}, csrf=forged).status == 403
        assert web.post(discussion, {"action": "close"}, csrf=forged).status == 403
        assert web.post("/settings/orgs", {"name": name}, csrf=forged).status == 403
        assert web.post("/settings/password", {"current": "a good password", "new": name, "again": name},
                        csrf=forged).status == 403
        assert web.post("/new", {"name": name, "owner": user, "type": "model"}, csrf=forged).status == 403
        assert web.post("/settings/tokens", {"action": "create", "name": name}, csrf=forged).status == 403
        assert web.post(f"/{repo}/settings", {"action": "delete", "confirm": repo}, csrf=forged).status == 403
        assert web.post(f"/{repo}/settings", {"action": "visibility", "visibility": "private"},
                        csrf=forged).status == 403
        assert web.post(f"/{repo}/refs", {"action": "create", "kind": "branch", "name": name},
                        csrf=forged).status == 403
        assert web.post(f"/{repo}/edit/main/a.txt", {"content": "changed"}, csrf=forged).status == 403
        assert web.upload(f"/{repo}/upload/main", {"b.txt": b"b"}, csrf=forged).status == 403
        assert web.post("/logout", {}, csrf=forged).status == 403
    # A form sent from another site is refused even with the right token.
    page = web.post("/settings/tokens", {"action": "create", "name": name}, headers={"Origin": "http://evil.example"})
    assert page.status == 403
    # Nothing changed.
    assert web.get(f"/{user}/{name}").status == 404 and web.get(f"/{repo}").status == 200
    assert name not in web.get("/settings/tokens").text
    assert WebClient(daemon.url).get(f"/{repo}").status == 200  # still public
    assert set(remote_refs(daemon, git, repo, token)) == {"HEAD", "refs/heads/main"}
    assert web.get(f"/{repo}/raw/main/a.txt").body == b"a\n"
    assert web.get("/settings/tokens", follow=False).status == 200  # still logged in
    thread = web.get(discussion).text
    assert name not in thread and "Closed." not in thread and name not in web.get(f"/{repo}/discussions").text
    assert name not in web.get("/settings/orgs").text and web.get(f"/{name}").status == 404
    WebClient(daemon.url).login(user, "a good password")  # the password is unchanged
    # The real token works.
    assert web.post("/settings/tokens", {"action": "create", "name": name}).status == 200
    assert name in web.get("/settings/tokens").text


def test_logging_out_or_a_new_password_ends_the_session(daemon):
    user, _, web = web_user(daemon)
    assert web.get("/settings/tokens", follow=False).status == 200
    cookie = web.cookie("gitd_session")
    assert cookie
    web.post("/logout", {}, csrf=web.get("/settings/tokens").csrf())
    assert web.get("/settings/tokens", follow=False).location.startswith("/login?next=")
    stolen = WebClient(daemon.url)
    stolen_page = stolen.get("/settings/tokens", follow=False, headers={"Cookie": f"gitd_session={cookie}"})
    assert stolen_page.status == 303  # the old cookie is nobody now
    web.login(user, "a good password")
    cookie = web.cookie("gitd_session")
    set_password(daemon, user, "another good password")
    assert stolen.get("/settings/tokens", follow=False, headers={"Cookie": f"gitd_session={cookie}"}).status == 303
    wrong = WebClient(daemon.url).post("/login", {"username": user, "password": "a good password"})
    assert wrong.status == 401 and "Wrong user name or password" in wrong.text


def test_discussions_and_pull_requests_are_opened_discussed_merged_and_closed(daemon, git, tmp_path):
    owner, token, web = web_user(daemon)
    repo = daemon.repo(owner)
    work = git.init_work(tmp_path / "w", {"README.md": "# r\n"})
    git("checkout", "-q", "-b", "feature", cwd=work)
    feature = git.commit(work, {"new.txt": "from the feature branch\n"}, message="Add new.txt")
    push(daemon, git, work, repo, token, "main", "feature")
    _, _, reader = web_user(daemon)

    # A reader opens a discussion; the owner comments (Markdown, sanitised); the reader closes it.
    opened = reader.post(f"/{repo}/discussions/new", {"title": "Question <b>1</b>", "description": "**how?**"})
    assert opened.status == 303
    thread = opened.location
    shown = reader.get(thread)
    assert "Question &lt;b&gt;1&lt;/b&gt;" in shown.text and "<strong>how?</strong>" in shown.text
    web.post(thread, {"action": "comment", "body": "Like this <script>alert(1)</script>"})
    assert "Like this" in reader.get(thread).text and "<script>alert" not in reader.get(thread).text
    assert reader.post(thread, {"action": "close"}).status == 200
    assert ">closed</span>" in reader.get(thread).text
    # Readers may not open pull requests or merge.
    assert reader.post(f"/{repo}/discussions/new", {"title": "PR", "kind": "pull", "source": "feature"}).status == 403

    # The owner proposes the feature branch and merges it through the hook chain.
    pr = web.post(f"/{repo}/discussions/new", {"title": "Feature", "kind": "pull", "source": "feature"})
    assert pr.status == 303
    page = web.get(pr.location)
    assert "pull request" in page.text and "new.txt" in page.text and feature[:7] in page.text
    num = pr.location.rsplit("/", 1)[1]
    assert remote_refs(daemon, git, repo, token)[f"refs/pr/{num}"] == feature
    assert reader.post(pr.location, {"action": "merge"}).status == 403
    merged = web.post(pr.location, {"action": "merge"})
    assert merged.status == 200 and "Merged." in merged.text and ">merged</span>" in merged.text
    assert web.get(f"/{repo}/raw/main/new.txt").body == b"from the feature branch\n"
    listing = web.get(f"/{repo}/discussions?status=all")
    assert "Question &lt;b&gt;1&lt;/b&gt;" in listing.text and "Feature" in listing.text
    # The Hub API sees the same discussions.
    api = WebClient(daemon.url).get(f"/api/models/{repo}/discussions")
    assert api.status == 200 and "Feature" in api.text


def test_branches_and_tags_are_made_and_removed_through_the_hook_chain(daemon, git, tmp_path):
    owner, token, web = web_user(daemon)
    repo = daemon.repo(owner)
    work = git.init_work(tmp_path / "w", {"a.txt": "a\n"})
    push(daemon, git, work, repo, token)
    head = git.out("rev-parse", "HEAD", cwd=work)
    made = web.post(f"/{repo}/refs", {"action": "create", "kind": "branch", "name": "dev", "from": "main"})
    assert made.status == 200 and "Created branch dev." in made.text
    web.post(f"/{repo}/refs", {"action": "create", "kind": "tag", "name": "v1.0", "from": "main"})
    refs = remote_refs(daemon, git, repo, token)
    assert refs["refs/heads/dev"] == head and refs["refs/tags/v1.0"] == head
    # Bad names and the default branch are refused with a message, nothing moved.
    for name in ("bad..name", "HEAD", "a" * 40, "-x"):
        page = web.post(f"/{repo}/refs", {"action": "create", "kind": "branch", "name": name})
        assert page.status == 400, name
    assert web.post(f"/{repo}/refs", {"action": "delete", "kind": "branch", "name": "main"}).status == 400
    # An edit on the new branch is a commit there only.
    assert web.post(f"/{repo}/edit/dev/a.txt", {"content": "on dev\n", "message": "Edit on dev"}).status == 303
    assert web.get(f"/{repo}/raw/dev/a.txt").body == b"on dev\n" and web.get(f"/{repo}/raw/main/a.txt").body == b"a\n"
    assert web.post(f"/{repo}/refs", {"action": "delete", "kind": "branch", "name": "dev"}).status == 200
    assert "refs/heads/dev" not in remote_refs(daemon, git, repo, token)


def test_repository_settings_rename_with_a_redirect_and_delete_only_when_confirmed(daemon, git, tmp_path):
    owner, token, web = web_user(daemon)
    repo = daemon.repo(owner)
    push(daemon, git, git.init_work(tmp_path / "w", {"a.txt": "a\n"}), repo, token)
    _, _, stranger = web_user(daemon)
    assert stranger.get(f"/{repo}/settings").status == 403
    assert stranger.post(f"/{repo}/settings", {"action": "delete", "confirm": repo},
                         csrf=stranger.get("/settings/tokens").csrf()).status == 403
    new_name = unique("renamed")
    moved = web.post(f"/{repo}/settings", {"action": "rename", "owner": owner, "name": new_name})
    assert moved.status == 303 and moved.location == f"/{owner}/{new_name}/settings"
    old = web.get(f"/{repo}/blob/main/a.txt", follow=False)
    assert old.status == 302 and old.location == f"/{owner}/{new_name}/blob/main/a.txt"
    renamed = f"{owner}/{new_name}"
    wrong = web.post(f"/{renamed}/settings", {"action": "delete", "confirm": new_name})
    assert wrong.status == 400 and f"type {renamed} to confirm" in wrong.text
    assert web.get(f"/{renamed}").status == 200
    gone = web.post(f"/{renamed}/settings", {"action": "delete", "confirm": renamed})
    assert gone.status == 303
    assert web.get(f"/{renamed}").status == 404 and web.get(f"/{repo}").status == 404


def test_a_50_mb_text_file_is_shown_cut_with_a_download_of_the_whole(make_daemon, git, tmp_path):
    daemon = make_daemon(settings={"plugins.policy.max_blob_size": "100MiB"})
    user, token = daemon.user()
    repo = daemon.repo(user)
    line = b"0123456789 the quick brown fox jumps over the lazy dog <script>x</script>\n"
    big = line * (50_000_000 // len(line))
    work = git.init_work(tmp_path / "w", {"big.txt": big})
    push(daemon, git, work, repo, token)
    web = WebClient(daemon.url)
    page = web.get(f"/{repo}/blob/main/big.txt")
    assert page.status == 200 and "only its beginning is shown" in page.text
    assert len(page.body) < 8_000_000  # a MiB of text, escaped and highlighted, not 50 MB
    assert "&lt;script&gt;" in page.text and "<script>x" not in page.text
    assert f'href="/{repo}/raw/main/big.txt?download=1"' in page.text
    whole = web.get(f"/{repo}/raw/main/big.txt?download=1")
    assert hashlib.sha256(whole.body).digest() == hashlib.sha256(big).digest()


def test_a_folder_of_100000_files_is_shown_a_page_at_a_time(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = tmp_path / "w"
    git("init", "-q", "-b", "main", str(work))
    count = 100_000
    # git fast-import writes the one big tree quickly (one blob, 100,000 names).
    script = ["blob", "mark :1", "data 3", "hi", "commit refs/heads/main", "mark :2",
              "committer T <t@example.com> 1700000000 +0000", "data 4", "many"]
    script += [f"M 100644 :1 files/f{n:06d}<b>.txt" for n in range(count)]
    subprocess.run(["git", "fast-import", "--quiet"], input=("\n".join(script) + "\n").encode(), cwd=work,
                   env=git.env, check=True, capture_output=True)
    push(daemon, git, work, repo, token)
    web = WebClient(daemon.url)
    seen: list[str] = []
    url = f"/{repo}/tree/main/files"
    first = web.get(url)
    assert first.status == 200 and "100000 entries" in first.text
    for _ in range(3):
        page = web.get(url)
        names = re.findall(r'/blob/main/files/(f\d{6})%3Cb%3E\.txt">f\d{6}&lt;b&gt;\.txt<', page.text)
        assert len(names) == 1000, len(names)
        seen += names
        nxt = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        assert nxt, "no next page"
        url = nxt.group(1).replace("&amp;", "&")
    assert seen == [f"f{n:06d}" for n in range(3000)]  # in order, none twice, none skipped
