"""The web UI's account settings and file views not covered elsewhere, over plain HTTP
against the session's daemon: SSH keys (that OpenSSH then uses), organisations and their
members, an image and a scripted SVG, a tree at a tag, and forged CSRF tokens on those
forms."""

from __future__ import annotations

import base64
import subprocess

from tests.e2e.sshclient import SSHClient, keygen, known_hosts_for
from tests.support import unique
from tests.web_support import WebClient, web_user

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
                       "awAAAABJRU5ErkJggg==")
SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><circle r="4"/></svg>'


def test_ssh_keys_added_on_the_web_let_git_in_and_removed_ones_do_not(daemon, tmp_path):
    user, _, web = web_user(daemon)
    repo = daemon.repo(user)
    key = keygen(tmp_path / "id_web")
    public = key.with_suffix(".pub").read_text().strip()
    client = SSHClient(daemon.ssh_host, daemon.ssh_port, key, known_hosts_for(daemon, tmp_path / "kh"))

    def ls_remote() -> int:
        return subprocess.run(["git", "ls-remote", client.url(f"{repo}.git")], capture_output=True,
                              env=client.env() | {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).returncode

    assert web.post("/settings/keys", {"action": "add", "key": public, "title": "laptop"}, csrf="forged").status == 403
    assert "No SSH keys." in web.get("/settings/keys").text
    added = web.post("/settings/keys", {"action": "add", "key": public, "title": "laptop"})
    assert added.status == 200 and "Added key SHA256:" in added.text and ">laptop<" in added.text
    assert ls_remote() == 0
    bad = web.post("/settings/keys", {"action": "add", "key": "ssh-ed25519 not-base64"})
    assert bad.status == 400 and 'role="alert"' in bad.text
    fingerprint = added.text.split("Added key ")[1].split(".")[0]
    assert web.post("/settings/keys", {"action": "remove", "fingerprint": fingerprint}, csrf="x").status == 403
    removed = web.post("/settings/keys", {"action": "remove", "fingerprint": fingerprint})
    assert removed.status == 200 and "No SSH keys." in removed.text
    assert ls_remote() != 0


def test_organisations_are_created_and_their_members_managed_by_admins_only(daemon):
    owner, _, web = web_user(daemon)
    member, _, other = web_user(daemon)
    org = unique("org")
    assert web.post("/settings/orgs", {"name": org}, csrf="forged").status == 403
    made = web.post("/settings/orgs", {"name": org})
    assert made.status == 200 and f"Created organisation {org}." in made.text
    page = f"/organizations/{org}/settings"
    assert other.get(page).status == 404  # not a member: no such organisation
    assert web.post(page, {"user": member, "role": "write"}, csrf="forged").status == 403
    added = web.post(page, {"user": member, "role": "write"})
    assert added.status == 200 and f"{member} is now a member with role write." in added.text
    assert f"/organizations/{org}/settings" in other.get("/settings/orgs").text
    seen = other.get(page)
    assert seen.status == 200 and other.post(page, {"user": member, "action": "remove"}, csrf=seen.csrf()).status == 403
    # The organisation's repositories follow the role: the member may now create one there.
    created = other.post("/new", {"owner": org, "name": unique("r"), "type": "model", "visibility": "public"})
    assert created.status == 303 and created.location.startswith(f"/{org}/")
    last = web.post(page, {"user": owner, "action": "remove"})
    assert last.status == 400 and "keeps at least one admin" in last.text
    gone = web.post(page, {"user": member, "action": "remove"})
    assert gone.status == 200 and f"Removed {member}." in gone.text and other.get(page).status == 404


def test_images_show_inline_a_scripted_svg_is_sandboxed_and_trees_open_at_tags(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w", {"pic.png": PNG, "evil.svg": SVG, "a.txt": "one\n"})
    git("tag", "v1", cwd=work)
    git.commit(work, {"b.txt": "two\n"})
    git("push", "-q", daemon.repo_url(repo, token=token), "main", "v1", cwd=work)
    web = WebClient(daemon.url)
    image = web.get(f"/{repo}/blob/main/pic.png")
    assert image.status == 200 and f'<img class="view" src="/{repo}/raw/main/pic.png"' in image.text
    raw = web.get(f"/{repo}/raw/main/pic.png")
    assert raw.body == PNG and raw.headers["content-type"] == "image/png"
    svg = web.get(f"/{repo}/raw/main/evil.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and "sandbox" in svg.headers["content-security-policy"]
    assert "script-src" not in svg.headers["content-security-policy"]  # default-src 'none': no script runs
    shown = web.get(f"/{repo}/blob/main/evil.svg")
    assert "<script>alert(1)</script>" not in shown.text
    at_tag = web.get(f"/{repo}/tree/v1")
    assert at_tag.status == 200 and f'href="/{repo}/blob/v1/a.txt"' in at_tag.text and "b.txt" not in at_tag.text
    assert "b.txt" in web.get(f"/{repo}/tree/main").text
