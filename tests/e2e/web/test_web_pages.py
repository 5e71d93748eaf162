"""The web UI's pages over plain HTTP against a real daemon: what readers see, the same access
rules as the APIs, and the git, LFS and Hub routes that share the pages' paths."""

from __future__ import annotations

import hashlib
import json
import re
import time

from tests.support import unique
from tests.web_support import WebClient, web_user

CARD = """---
license: mit
base_model: someone/base
pipeline_tag: text-classification
---
# A tiny model

See [the guide](docs/guide.md).
"""


def push(daemon, git, tmp_path, full_name, token, files, *, repo_type="model", message="initial"):
    work = git.init_work(tmp_path / unique("w"), files, message=message)
    git("push", "-q", daemon.repo_url(full_name, token=token, repo_type=repo_type), "main", cwd=work)
    return work


def test_a_public_repository_reads_as_pages_and_still_clones(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = push(daemon, git, tmp_path, repo, token, {"README.md": CARD, "docs/guide.md": "# Guide\n",
                                                   "src/app.py": "def main():\n    return 1\n"})
    head = git.out("rev-parse", "HEAD", cwd=work)
    web = WebClient(daemon.url)
    card = web.get(f"/{repo}")
    assert card.status == 200 and card.headers["content-type"].startswith("text/html")
    assert "<h1>A tiny model</h1>" in card.text and "license: mit" not in card.text  # front matter as facts
    assert "<dt>License</dt><dd>mit</dd>" in card.text and 'href="/someone/base"' in card.text
    assert f'href="/{repo}/blob/main/docs/guide.md"' in card.text
    assert "frame-ancestors 'none'" in card.headers["content-security-policy"]
    tree = web.get(f"/{repo}/tree/main")
    assert tree.status == 200 and f'href="/{repo}/tree/main/src"' in tree.text
    assert f'href="/{repo}/blob/main/README.md"' in tree.text
    sub = web.get(f"/{repo}/tree/main/src")
    assert f'href="/{repo}/blob/main/src/app.py"' in sub.text
    blob = web.get(f"/{repo}/blob/main/src/app.py")
    assert blob.status == 200 and '<span class="k">def</span>' in blob.text
    raw = web.get(f"/{repo}/raw/main/src/app.py")
    assert raw.body == b"def main():\n    return 1\n"
    assert raw.headers["content-type"] == "text/plain; charset=utf-8" and raw.headers["x-content-type-options"] == \
        "nosniff" and "sandbox" in raw.headers["content-security-policy"]
    assert web.get(f"/{repo}/tree/{head}/src").status == 200  # any commit, not only branches
    commits = web.get(f"/{repo}/commits/main")
    assert f"/{repo}/commit/{head}" in commits.text
    commit = web.get(f"/{repo}/commit/{head}")
    assert commit.status == 200 and "src/app.py" in commit.text and "3 files changed" in commit.text
    assert web.get(f"/{repo}/tree/no-such-branch").status == 404
    assert web.get(f"/{repo}/blob/main/missing.txt").status == 404
    # The revision picker works without JavaScript.
    go = web.get(f"/{repo}/go?kind=tree&rev=main&path=src", follow=False)
    assert go.status == 303 and go.location == f"/{repo}/tree/main/src"
    # ".git" leads to the page; git itself still clones the page's URL.
    moved = web.get(f"/{repo}.git", follow=False)
    assert moved.status == 301 and moved.location == f"/{repo}"
    clone = tmp_path / "clone"
    git("clone", "-q", daemon.repo_url(repo, suffix=""), str(clone))
    assert (clone / "src" / "app.py").read_text() == "def main():\n    return 1\n"


def test_the_api_git_and_resolve_routes_keep_their_paths(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    push(daemon, git, tmp_path, repo, token, {"config.json": '{"a": 1}'})
    web = WebClient(daemon.url)
    refs = web.get(f"/{repo}/info/refs?service=git-upload-pack")
    assert refs.status == 200 and refs.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    resolved = web.get(f"/{repo}/resolve/main/config.json")
    assert resolved.status == 200 and resolved.body == b'{"a": 1}' and "x-repo-commit" in resolved.headers
    info = web.get(f"/api/models/{repo}")
    assert info.status == 200 and json.loads(info.text)["id"] == repo
    assert web.get(f"/{repo}.git/info/lfs/objects/batch").status in (404, 405)  # LFS's path, not a page


def test_a_private_repository_is_a_404_page_to_everyone_who_may_not_read_it(daemon, git, tmp_path):
    owner, token, owner_web = web_user(daemon)
    repo = daemon.repo(owner, private=True)
    push(daemon, git, tmp_path, repo, token, {"README.md": "# secret plans\n", "a.txt": "secret"})
    opened = owner_web.post(f"/{repo}/discussions/new", {"title": "secret thread", "description": "secret"})
    assert opened.status == 303 and opened.location == f"/{repo}/discussions/1"
    _, _, stranger = web_user(daemon)
    anonymous = WebClient(daemon.url)
    missing = f"{owner}/{unique('none')}"
    paths = ["", "/tree/main", "/blob/main/a.txt", "/raw/main/a.txt", "/raw/main/a.txt?download=1",
             "/commits/main", "/commit/main", "/refs", "/discussions", "/discussions/1", "/settings",
             "/upload/main", "/edit/main/a.txt", "/tab/metadata/lineage"]
    for path in paths:
        assert owner_web.get(f"/{repo}{path}").status == 200, path
        for who in (anonymous, stranger):
            page = who.get(f"/{repo}{path}")
            assert page.status == 404, (path, page.status)
            assert "secret" not in page.text
            # The very same page as for a repository that does not exist.
            assert page.text.replace(repo, "X") == who.get(f"/{missing}{path}").text.replace(missing, "X"), path
    # Nor does it show up in listings, search or its owner's page.
    for page in ("/models", f"/models?search={repo.split('/')[1]}", f"/{owner}", f"/search?q={repo.split('/')[1]}"):
        assert repo not in stranger.get(page).text and repo not in anonymous.get(page).text, page
        assert repo in owner_web.get(page).text, page


def test_listings_filter_by_the_metadata_plugins_tags_sort_and_page(make_daemon, git, tmp_path):
    daemon = make_daemon(settings={"web.list_page": 2, "jobs.poll_interval": 0.2})
    user, token = daemon.user()
    stem = unique("lst")
    cards = [("mit", "text-classification", "transformers", "en"), ("apache-2.0", "text-generation",
                                                                     "transformers", "fr"),
             ("mit", "text-generation", "peft", "en")]
    for n, (license_, task, library, language) in enumerate(cards):
        repo = daemon.repo(user, f"{stem}-{n}")
        push(daemon, git, tmp_path, repo, token, {"README.md": f"---\nlicense: {license_}\npipeline_tag: {task}\n"
                                                             f"library_name: {library}\nlanguage: {language}\n"
                                                             f"---\n# {n}\n"})
    web = WebClient(daemon.url)

    def shown(page) -> list[str]:
        return re.findall(rf'class="name" href="/({user}/{stem}-\d)"', page.text)

    deadline = time.monotonic() + 60
    while True:  # the metadata plugin tags in a background job
        page = web.get(f"/models?search={stem}&license=mit&sort=name")
        tagged = len(shown(page)) == 2 and len(shown(web.get(f"/models?search={stem}&license=apache-2.0"))) == 1
        if tagged or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert page.status == 200 and shown(page) == [f"{user}/{stem}-0", f"{user}/{stem}-2"]  # sorted by name
    # The task, library and language filters, alone and together.
    for query, expected in (("task=text-generation", [1, 2]), ("library=peft", [2]), ("language=en", [0, 2]),
                            ("task=text-generation&language=en", [2]), ("library=transformers&language=de", [])):
        assert shown(web.get(f"/models?search={stem}&sort=name&{query}")) == [f"{user}/{stem}-{n}" for n in expected]
    # Two repositories a page here: the pages link to each other.
    first = web.get(f"/models?search={stem}&sort=name")
    assert shown(first) == [f"{user}/{stem}-0", f"{user}/{stem}-1"] and 'rel="next"' in first.text
    second = web.get(f"/models?search={stem}&sort=name&p=1")
    assert shown(second) == [f"{user}/{stem}-2"] and "Page 2" in second.text and 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text


def test_lfs_files_show_their_size_sha256_and_a_download(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    content = b"weights " * 5000
    work = git.init_work(tmp_path / "w", {"README.md": "x\n"})
    git("lfs", "install", "--local", cwd=work)
    git("lfs", "track", "*.bin", cwd=work)
    git.commit(work, {"model.bin": content}, message="weights")
    git("push", "-q", daemon.repo_url(repo, token=token), "main", cwd=work)
    web = WebClient(daemon.url)
    sha = hashlib.sha256(content).hexdigest()
    page = web.get(f"/{repo}/blob/main/model.bin")
    assert page.status == 200 and sha in page.text and "Stored with Git LFS" in page.text
    assert f'href="/{repo}/raw/main/model.bin?download=1" download="model.bin"' in page.text
    assert web.get(f"/{repo}/raw/main/model.bin?download=1").body == content
    tree = web.get(f"/{repo}/tree/main")
    assert "LFS" in tree.text and "40.0 KB" in tree.text
