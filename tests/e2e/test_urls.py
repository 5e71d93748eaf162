"""URL layout (issue 2 §3): the Hub's four repository types, reserved words, names, paths on disk."""

from __future__ import annotations

import pytest

from tests.support import unique

TYPES = ("model", "dataset", "space", "code")


def test_same_name_under_each_type_is_a_separate_repo_at_every_url_form(daemon, git, tmp_path):
    user, token = daemon.user()
    name = unique("same")
    heads = {}
    for repo_type in TYPES:
        daemon.repo(user, name, repo_type=repo_type)
        work = git.init_work(tmp_path / repo_type, {"type.txt": repo_type}, message=f"a {repo_type}")
        git("push", daemon.repo_url(f"{user}/{name}", token=token, repo_type=repo_type), "main", cwd=work)
        heads[repo_type] = git.out("rev-parse", "HEAD", cwd=work)
    assert len(set(heads.values())) == 4
    for repo_type in TYPES:
        for suffix in (".git", ""):
            listed = git.out("ls-remote", daemon.repo_url(f"{user}/{name}", repo_type=repo_type, suffix=suffix))
            assert listed.split()[0] == heads[repo_type], (repo_type, suffix)
    # Clone without .git, as users copy the Hub's web URL.
    clone = tmp_path / "clone"
    git("clone", "-q", daemon.repo_url(f"{user}/{name}", repo_type="dataset", suffix=""), str(clone))
    assert (clone / "type.txt").read_text() == "dataset"


def test_the_on_disk_path_comes_from_the_id_not_the_name(daemon, git, tmp_path):
    user, token = daemon.user()
    name = unique("Odd.Name_x-")
    daemon.repo(user, name, repo_type="space")
    work = git.init_work(tmp_path / "w")
    git("push", daemon.repo_url(f"{user}/{name}", token=token, repo_type="space"), "main", cwd=work)
    repo_id = daemon.repo_id(f"{user}/{name}", "space")
    path = daemon.data / "repos" / f"{repo_id % 256:02x}" / f"{repo_id}.git"
    assert (path / "HEAD").is_file()
    assert git.out("--git-dir", str(path), "rev-parse", "refs/heads/main") == git.out("rev-parse", "HEAD", cwd=work)
    for p in daemon.data.rglob("*"):
        assert user not in p.name and name not in p.name, p


@pytest.mark.parametrize("word", ["datasets", "spaces", "codes", "api", "models", "healthz", "metrics", "Datasets"])
def test_route_words_are_reserved_for_accounts(daemon, word):
    code, _, err = daemon.cli("user", "add", word, check=False)
    assert code == 1 and "reserved" in err
    owner, _ = daemon.user()
    code, _, err = daemon.cli("org", "create", word, "--owner", owner, check=False)
    assert code == 1 and "reserved" in err
    _, listed, _ = daemon.cli("user", "list")
    assert word.lower() not in [line.split()[0].lower() for line in listed.splitlines()[1:]]


@pytest.mark.parametrize("name", ["..", "a..b", ".git", "x.git", "-lead", ".hidden", "_u", "x" * 97, "caf\u00e9",
                                  "a b", "a/b", "", "r\n"])
def test_invalid_repo_names_are_refused_and_create_nothing(daemon, name):
    owner, _ = daemon.user()
    before = sorted(daemon.data.joinpath("repos").rglob("*"))
    code, _, err = daemon.cli("repo", "create", f"{owner}/{name}", check=False)
    assert code != 0 and err.startswith("gitd: error:")
    assert sorted(daemon.data.joinpath("repos").rglob("*")) == before


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "x" * 96, "7b", "model.v2.1"])
def test_valid_repo_names_are_served(daemon, git, name):
    owner, _ = daemon.user()
    daemon.repo(owner, name)
    out = git("ls-remote", daemon.repo_url(f"{owner}/{name}"))
    assert out.returncode == 0
