"""The built-in plugins' tabs on the web UI's repository pages (``gitd_web_tabs``), over
plain HTTP against the session's daemon: the dataset viewer's table (first rows, pages,
search, filter, column statistics), a space's running app with its stage and logs, and a
mirror's status with "Sync now"; each with the same access rules as the APIs."""

from __future__ import annotations

import html
import json
import re
import urllib.request

import pytest

from tests.e2e.hook_helpers import wait_for
from tests.e2e.mirror_helpers import wait_sync
from tests.mirror_support import Upstream
from tests.support import Git, unique
from tests.web_support import WebClient, web_user

HOSTILE = '<img src=x onerror="alert(1)">'
CSV = "id,text,label\n" + "".join(
    f"{i},{HOSTILE if i == 7 else f'row number {i} ' + ('even' if i % 2 == 0 else 'odd')},{i % 3}\n"
    for i in range(250))


def push(daemon, git, root, full_name, token, files, repo_type):
    work = git.init_work(root / unique("w"), files)
    git("push", "-q", daemon.repo_url(full_name, token=token, repo_type=repo_type), "main", cwd=work)
    return git.out("rev-parse", "HEAD", cwd=work)


def processed(daemon, dataset, token, head) -> bool:
    request = urllib.request.Request(f"{daemon.url}/api/plugins/datasets/parquet?dataset={dataset}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.headers.get("X-Revision") == head
    except OSError:
        return False


def cells(page, column: int = 2) -> list[str]:
    """The text of one column of the viewer's table (1: the first data column)."""
    out = []
    for row in re.findall(r"<tr><th scope=\"row\">\d+</th>(.*?)</tr>", page.text):
        values = re.findall(r"<td>(.*?)</td>", row)
        out.append(html.unescape(values[column - 1]))
    return out


def next_link(page) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture(scope="module")
def world(daemon, tmp_path_factory):
    root = tmp_path_factory.mktemp("tabs")
    git = Git(root / "home")
    owner, token, web = web_user(daemon)
    _, _, other = web_user(daemon)
    public = daemon.repo(owner, unique("ds"), repo_type="dataset")
    private = daemon.repo(owner, unique("pds"), repo_type="dataset", private=True)
    heads = {public: push(daemon, git, root, public, token, {"data/train.csv": CSV}, "dataset"),
             private: push(daemon, git, root, private, token, {"train.csv": "a,b\n1,secret\n"}, "dataset")}
    space = daemon.repo(owner, unique("sp"), repo_type="space")
    push(daemon, git, root, space, token, {"README.md": "---\nsdk: static\n---\n# s\n",
                                           "index.html": "<h1>static space</h1>"}, "space")
    private_space = daemon.repo(owner, unique("psp"), repo_type="space", private=True)
    up = Upstream(git, root)
    mirrored = daemon.repo(owner, unique("mir"))
    daemon.cli("mirror", "add", mirrored, up.url)
    for repo, head in heads.items():
        wait_for(lambda r=repo, h=head: processed(daemon, r, token, h), timeout=120, what=f"{repo} processed")
    return {"owner": owner, "token": token, "web": web, "other": other, "public": public, "private": private,
            "space": space, "private_space": private_space, "mirrored": mirrored, "up": up}


def test_the_dataset_viewer_tab_pages_searches_filters_and_describes_columns(world):
    web, ds = WebClient(world["web"].base), world["public"]
    card = web.get(f"/datasets/{ds}")
    tab = f"/datasets/{ds}/tab/datasets/viewer"
    assert f'href="{tab}"' in card.text and ">Dataset viewer<" in card.text
    first = web.get(tab)
    assert first.status == 200 and "250 rows; showing 1&ndash;100" in first.text
    texts = cells(first)
    assert texts[0] == "row number 0 even" and len(texts) == 100
    assert texts[7] == HOSTILE and "&lt;img src=x onerror=" in first.text and HOSTILE not in first.text
    second = web.get(next_link(first))
    assert cells(second)[0] == "row number 100 even" and 'rel="prev"' in second.text
    last = web.get(next_link(second))
    assert cells(last)[-1] == "row number 249 odd" and next_link(last) is None
    found = web.get(f"{tab}?config=default&split=train&q=odd")
    assert "124 matching rows" in found.text and all("odd" in t for t in cells(found))
    filtered = web.get(f"{tab}?config=default&split=train&where=label+%3D+2&orderby=id+DESC")
    assert "83 matching rows" in filtered.text and cells(filtered, 1)[:2] == ["248", "245"]
    bad = web.get(f"{tab}?config=default&split=train&where=nope+%3D+1")
    assert bad.status == 200 and 'role="alert"' in bad.text and "nope" in bad.text
    stats = web.get(f"{tab}?config=default&split=train&view=statistics")
    assert stats.status == 200 and "<h3>id <span class=\"badge\">int</span>" in stats.text
    assert "<dt>max</dt><dd>249</dd>" in stats.text and "<meter" in stats.text
    assert "<h3>text <span class=\"badge\">string_text</span>" in stats.text and "Histogram (lengths)" in stats.text


def test_a_private_datasets_viewer_tab_is_a_404_to_whoever_may_not_read_it(daemon, world):
    tab = f"/datasets/{world['private']}/tab/datasets/viewer"
    mine = world["web"].get(tab)
    assert mine.status == 200 and "secret" in mine.text
    missing = f"/datasets/{world['owner']}/{unique('none')}/tab/datasets/viewer"
    for client in (world["other"], WebClient(daemon.url)):
        page = client.get(tab)
        assert page.status == 404 and "secret" not in page.text
        assert page.text.replace(tab, missing) == client.get(missing).text  # the same page as a missing one
    # A model has no viewer tab.
    assert world["web"].get(f"/{world['mirrored']}/tab/datasets/viewer").status == 404


def test_a_spaces_tab_embeds_its_app_with_its_stage_and_shows_logs_to_writers(daemon, world):
    space, web = world["space"], world["web"]
    tab = f"/spaces/{space}/tab/spaces/app"
    page = wait_for(lambda: (p := web.get(tab)) and "RUNNING" in p.text and p, timeout=60, what="space running")
    assert f'<iframe class="space-app" src="/spaces/{space}/app/" sandbox="allow-scripts' in page.text
    assert "allow-same-origin" not in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert "Build log" in page.text and "Run log" in page.text and ">Restart</button>" in page.text
    restarted = web.post(tab, {"action": "restart"})
    assert restarted.status == 200 and "Restart queued" in restarted.text
    assert web.post(tab, {"action": "restart"}, csrf="forged").status == 403
    reader = world["other"].get(tab)  # a public space: readers see the app, not the logs
    assert reader.status == 200 and "<iframe" in reader.text and "Build log" not in reader.text
    assert world["other"].post(tab, {"action": "restart"}, csrf=reader.csrf()).status == 403
    # Never built: no app to embed. Private: a 404 to others.
    private = f"/spaces/{world['private_space']}/tab/spaces/app"
    assert "Nothing runs here yet" in web.get(private).text
    assert world["other"].get(private).status == 404 and WebClient(daemon.url).get(private).status == 404


def test_a_mirrors_tab_shows_its_status_and_syncs_now_for_writers(daemon, world):
    repo, web, token = world["mirrored"], world["web"], world["token"]
    pull = wait_sync(daemon, repo, token)
    tab = f"/{repo}/tab/mirror/mirror"
    assert f'href="{tab}"' in web.get(f"/{repo}").text
    page = web.get(tab)
    assert page.status == 200 and world["up"].url in page.text
    assert f"<dt>Last success</dt><dd>{pull['last_success']}</dd>" in page.text
    assert "<dt>Last sync: refs_changed</dt><dd>1</dd>" in page.text and ">Sync now</button>" in page.text
    world["up"].commit({"new.txt": "new\n"})
    synced = web.post(tab, {})
    assert synced.status == 200 and "Sync queued" in synced.text
    after = wait_sync(daemon, repo, token, after=pull["last_attempt"])
    assert after["last_error"] is None and after["last_result"]["refs_changed"] == 1
    reader = world["other"].get(tab)  # a public repository: its mirror's status is readable
    assert reader.status == 200 and "Last success" in reader.text and "Sync now" not in reader.text
    assert world["other"].post(tab, {}, csrf=reader.csrf()).status == 403
    # A repository that mirrors nothing has no such tab; a private mirror's is a 404 to others.
    plain = world["public"]
    assert world["web"].get(f"/datasets/{plain}/tab/mirror/mirror").status == 404
    assert _make_private(daemon, repo, token) == 200
    assert world["other"].get(tab).status == 404 and web.get(tab).status == 200


def _make_private(daemon, repo, token) -> int:
    """The Hub API's update_repo_settings."""
    request = urllib.request.Request(f"{daemon.url}/api/models/{repo}/settings", method="PUT",
                                     data=json.dumps({"private": True}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status


def test_the_lineage_tab_names_bases_and_derivatives_the_caller_may_read(daemon, world, tmp_path):
    owner, token, web = world["owner"], world["token"], world["web"]
    git = Git(tmp_path / "home")
    base = daemon.repo(owner, unique("base"))
    tuned = daemon.repo(owner, unique("tuned"))
    hidden = daemon.repo(owner, unique("hidden"), private=True)
    push(daemon, git, tmp_path, base, token, {"README.md": "# base\n"}, "model")
    for repo in (tuned, hidden):
        push(daemon, git, tmp_path, repo, token, {"README.md": f"---\nbase_model: {base}\n---\n# t\n"}, "model")
    tab = f"/{base}/tab/metadata/lineage"
    mine = wait_for(lambda: (p := web.get(tab)) and hidden in p.text and tuned in p.text and p, timeout=60,
                    what="both derivatives tagged")
    assert f'<a href="/{tuned}">{tuned}</a> <span class="badge">finetune</span>' in mine.text
    theirs = world["other"].get(tab)
    assert theirs.status == 200 and tuned in theirs.text and hidden not in theirs.text  # private: not named
    up = WebClient(daemon.url).get(f"/{tuned}/tab/metadata/lineage")
    assert f'<a href="/{base}">{base}</a>' in up.text.split("<h2>Derived models</h2>")[0]
