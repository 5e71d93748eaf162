"""Push and clone with the real git client over Smart HTTP."""

from tests.support import unique


def test_push_then_clone_roundtrip(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "work", {"README.md": "hello\n", "dir/a.txt": "a\n"})
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)

    clone = tmp_path / "clone"
    git("clone", "-q", daemon.repo_url(repo), str(clone))
    assert git.out("rev-parse", "HEAD", cwd=clone) == head
    assert (clone / "dir" / "a.txt").read_text() == "a\n"


def test_every_url_form_reaches_the_same_repo(daemon, git, tmp_path):
    user, token = daemon.user()
    for repo_type in ("model", "dataset", "space", "code"):
        repo = daemon.repo(user, repo_type=repo_type)
        work = git.init_work(tmp_path / f"w-{repo_type}", {"f": repo_type})
        git("push", daemon.repo_url(repo, token=token, repo_type=repo_type), "main", cwd=work)
        for suffix in (".git", ""):
            out = git.out("ls-remote", daemon.repo_url(repo, repo_type=repo_type, suffix=suffix))
            assert git.out("rev-parse", "HEAD", cwd=work) in out


def test_private_repo_is_hidden(daemon, git, tmp_path):
    owner, owner_token = daemon.user()
    _, other_token = daemon.user()
    repo = daemon.repo(owner, private=True)
    work = git.init_work(tmp_path / "w")
    git("push", daemon.repo_url(repo, token=owner_token), "main", cwd=work)

    anon = git("ls-remote", daemon.repo_url(repo), check=False)
    assert anon.returncode != 0
    assert b"could not read Username" in anon.stderr or b"Authentication failed" in anon.stderr

    other = git("ls-remote", daemon.repo_url(repo, token=other_token), check=False)
    assert other.returncode != 0 and b"not found" in other.stderr.lower()

    missing = git("ls-remote", daemon.repo_url(f"{owner}/{unique('nope')}", token=other_token), check=False)
    assert missing.stderr.replace(b"nope", b"").count(b"not found") == other.stderr.count(b"not found")
