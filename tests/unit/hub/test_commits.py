import asyncio

import pygit2
import pytest

from gitd.errors import BadRequest, PayloadTooLarge
from gitd.hub.commit_request import ndjson_lines
from gitd.hub.commits import AddFile, DeleteFile, DeleteFolder, build_tree, check_path
from gitd.hub.gitread import EntryNotFound


@pytest.fixture
def repo(tmp_path):
    return pygit2.init_repository(str(tmp_path / "r.git"), bare=True)


def files(repo, tree_oid, prefix=""):
    out = {}
    for e in repo[tree_oid]:
        if e.type_str == "tree":
            out.update(files(repo, e.id, f"{prefix}{e.name}/"))
        else:
            out[f"{prefix}{e.name}"] = repo[e.id].data
    return out


def commit(repo, tree):
    sig = pygit2.Signature("t", "t@example.com")
    return str(repo.create_commit(None, sig, sig, "m", pygit2.Oid(hex=tree), []))


def test_build_tree_edits_only_touched_paths(repo):
    blob = lambda data: str(repo.create_blob(data))  # noqa: E731
    first = build_tree(repo, None, [AddFile("a/b/c.txt", blob(b"c")), AddFile("a/d.txt", blob(b"d")),
                                    AddFile("top", blob(b"t"))])
    parent = commit(repo, first)
    second = build_tree(repo, parent, [DeleteFile("a/d.txt"), AddFile("a/b/e.txt", blob(b"e"))])
    assert files(repo, second) == {"a/b/c.txt": b"c", "a/b/e.txt": b"e", "top": b"t"}
    third = build_tree(repo, commit(repo, second), [DeleteFolder("a")])
    assert files(repo, third) == {"top": b"t"}
    # untouched subtrees keep their ids
    assert repo[second]["a"]["b"].id != repo[first]["a"]["b"].id
    unchanged = build_tree(repo, parent, [AddFile("top", blob(b"t2"))])
    assert repo[unchanged]["a"].id == repo[first]["a"].id


def test_build_tree_errors(repo):
    blob = str(repo.create_blob(b"x"))
    parent = commit(repo, build_tree(repo, None, [AddFile("f", blob), AddFile("d/g", blob)]))
    with pytest.raises(EntryNotFound):
        build_tree(repo, parent, [DeleteFile("nope")])
    # deletedFile naming a folder deletes it, as on the Hub
    assert set(files(repo, build_tree(repo, parent, [DeleteFile("d")]))) == {"f"}
    with pytest.raises(EntryNotFound):
        build_tree(repo, parent, [DeleteFolder("f")])
    with pytest.raises(BadRequest):
        build_tree(repo, parent, [AddFile("f/under-a-file", blob)])
    with pytest.raises(BadRequest):
        build_tree(repo, parent, [AddFile("d", blob)])
    assert files(repo, build_tree(repo, parent, [DeleteFolder("")])) == {}


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../b", "a//b", ".git/config", "x/.GIT/y", "a\\b", "n\0ul"])
def test_check_path_refuses(bad):
    with pytest.raises(BadRequest):
        check_path(bad)


@pytest.mark.parametrize("bad", [".git ", ".git.", ".git. .", "git~1", "GIT~1/x", "a/.Git /b", ".g\u200cit",
                                 "\ufeff.git", ".git::$INDEX_ALLOCATION", "tab\there", "x" * 4097])
def test_regression_check_path_refuses_what_file_systems_take_for_dot_git(bad):
    """Paths git's verify_path/fsck refuse (NTFS, HFS+ spellings of .git) gave a 500 from the commit API."""
    with pytest.raises(BadRequest):
        check_path(bad)


@pytest.mark.parametrize("good", [".gitignore", ".gitattributes", "git~10", "a/.github/x.yml", "x" * 4096])
def test_check_path_keeps_names_that_only_look_like_dot_git(good):
    assert check_path(good) == good


def test_check_path_normalises_trailing_slash():
    assert check_path("sub/dir/") == "sub/dir"


class Chunks:
    def __init__(self, *chunks: bytes):
        self.chunks = chunks

    async def iter_chunked(self, n):
        for c in self.chunks:
            yield c


async def _collect(*chunks, limit=100, total=1000):
    return [bytes(box.pop()) async for box in ndjson_lines(Chunks(*chunks), limit, total, asyncio.Semaphore(1))]


def test_ndjson_lines_split_across_chunks():
    assert asyncio.run(_collect(b'{"a"', b':1}\n\n{"b":2}', b"\n{\"c\":3}")) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    with pytest.raises(PayloadTooLarge):
        asyncio.run(_collect(b"x" * 60, b"y" * 60, limit=100))


def test_regression_ndjson_commit_body_has_a_total_cap():
    """A commit request was capped per line only: any number of lines could follow."""
    lines = [b'{"k":%d}\n' % i for i in range(100)]
    with pytest.raises(PayloadTooLarge, match="commit request is larger than 500 bytes"):
        asyncio.run(_collect(*lines, total=500))
    assert len(asyncio.run(_collect(*lines, total=5000))) == 100
