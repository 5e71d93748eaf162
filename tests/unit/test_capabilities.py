import os

from gitd.http.capabilities import CapabilityCache

ADVERT = b"000eversion 2\n0013ls-refs=unborn\n0000"


def test_entries_are_keyed_by_the_config_file(tmp_path):
    repo = tmp_path / "r.git"
    repo.mkdir()
    config = repo / "config"
    config.write_text("[core]\n")
    cache = CapabilityCache()
    key = cache.key(repo, "version=2")
    cache.put(key, ADVERT)
    assert cache.get(cache.key(repo, "version=2")) == ADVERT
    assert cache.get(cache.key(repo, "version=2:x=y")) is None
    config.write_text("[core]\n[lsrefs]\nunborn = ignore\n")
    os.utime(config, ns=(1, 1))
    assert cache.get(cache.key(repo, "version=2")) is None


def test_only_v2_advertisements_are_kept_and_the_size_is_bounded(tmp_path):
    cache = CapabilityCache(max_entries=3)
    assert cache.key(tmp_path / "missing.git", "version=2") is None
    cache.put(None, ADVERT)
    repos = []
    for i in range(5):
        repo = tmp_path / f"{i}.git"
        repo.mkdir()
        (repo / "config").write_text("")
        repos.append(repo)
        cache.put(cache.key(repo, "version=2"), ADVERT)
    cache.put(cache.key(repos[0], "version=1"), b"001e# service=git-upload-pack\n0000")
    assert [cache.get(cache.key(r, "version=2")) is not None for r in repos] == [False, False, True, True, True]
    assert cache.get(cache.key(repos[0], "version=1")) is None
