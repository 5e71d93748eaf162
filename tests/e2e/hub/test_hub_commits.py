"""API commits are real git commits: interleaved with git pushes, concurrent, and under push policy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.support import unique


def test_git_push_and_api_commits_interleave(hub, daemon, git, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo = daemon.repo(user, unique("mix"))
    url = daemon.repo_url(repo, token=token)
    work = git.init_work(tmp_path / "w", {"pushed.txt": "1\n"})
    git("push", url, "main", cwd=work)

    api.upload_file(path_or_fileobj=b"api\n", path_in_repo="from-api.txt", repo_id=repo)
    # the local clone is now behind: a plain push is refused, a pull brings the API commit
    git.commit(work, {"pushed.txt": "2\n"}, message="second push")
    assert git("push", url, "main", cwd=work, check=False).returncode != 0
    git("pull", "--no-rebase", "--no-edit", url, "main", cwd=work)
    assert (work / "from-api.txt").read_text() == "api\n"
    git("push", url, "main", cwd=work)

    api.upload_file(path_or_fileobj=b"api 2\n", path_in_repo="from-api.txt", repo_id=repo)
    git("pull", "--no-rebase", "--no-edit", url, "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    assert api.model_info(repo).sha == head
    assert api.list_repo_files(repo) == ["from-api.txt", "pushed.txt"]
    log = git.out("log", "--format=%an|%s", cwd=work).splitlines()
    assert f"{user}|Upload from-api.txt with huggingface_hub" in log
    # the server's repository is sound
    clone = tmp_path / "clone"
    git("clone", "-q", daemon.repo_url(repo), str(clone))
    git("fsck", "--strict", cwd=clone)
    assert (clone / "from-api.txt").read_text() == "api 2\n" and (clone / "pushed.txt").read_text() == "2\n"


def test_concurrent_api_commits_never_lose_each_other(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('race')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"0", path_in_repo="base.txt", repo_id=repo)

    def commit(i: int) -> str:
        own = HfApi(endpoint=hub.url, token=token)
        return own.create_commit(repo, commit_message=f"c{i}",
                                 operations=[CommitOperationAdd(f"f{i}.txt", str(i).encode())]).oid

    with ThreadPoolExecutor(8) as pool:
        oids = list(pool.map(commit, range(16)))
    assert len(set(oids)) == 16
    assert sorted(api.list_repo_files(repo)) == sorted([".gitattributes", "base.txt",
                                                        *[f"f{i}.txt" for i in range(16)]])
    history = [c.commit_id for c in api.list_repo_commits(repo)]
    assert set(oids) <= set(history) and len(history) == 18  # initial + base + 16, one straight line


def test_policy_applies_to_api_commits(make_daemon, tmp_path):
    d = make_daemon(settings={"plugins.policy.max_blob_size": "2KiB"})
    user, token = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo = f"{user}/{unique('pol')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"small", path_in_repo="ok.txt", repo_id=repo)
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x" * 4096, path_in_repo="big.txt", repo_id=repo)
    assert exc.value.response.status_code == 403 and "big.txt" in str(exc.value)
    assert api.list_repo_files(repo) == [".gitattributes", "ok.txt"]
    # the default branch is protected from deletion through the API as well
    with pytest.raises(HfHubHTTPError):
        api.delete_branch(repo, branch="main")
    assert [b.name for b in api.list_repo_refs(repo).branches] == ["main"]
