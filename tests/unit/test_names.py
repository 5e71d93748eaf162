import pytest

from gitd.errors import BadRequest
from gitd.names import check_account_name, check_name, is_valid_name, repo_url_path, split_full_name


@pytest.mark.parametrize("name", ["a", "A-b_c.d", "x" * 96, "7up", "model.v2"])
def test_valid_names(name):
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-x", "_x", "a..b", "..", "repo.git", "REPO.GIT", "a/b", "x" * 97, "caf\u00e9", "a b",
     "a\x00b", "\u0430pple", "%2e%2e"],
)
def test_invalid_names(name):
    assert not is_valid_name(name)
    with pytest.raises(BadRequest):
        check_name(name)


@pytest.mark.parametrize("word", ["api", "datasets", "spaces", "codes", "models", "API", "Datasets"])
def test_reserved_words_are_not_account_names(word):
    with pytest.raises(BadRequest, match="reserved"):
        check_account_name(word)


def test_split_full_name():
    assert split_full_name("alice/model") == ("alice", "model")
    for bad in ("alice", "a/b/c", "/x", "a/..", "../etc/passwd"):
        with pytest.raises(BadRequest):
            split_full_name(bad)


def test_url_paths_follow_the_hub_layout():
    assert repo_url_path("model", "a", "b") == "a/b"
    assert repo_url_path("dataset", "a", "b") == "datasets/a/b"
    assert repo_url_path("space", "a", "b") == "spaces/a/b"
    assert repo_url_path("code", "a", "b") == "codes/a/b"


@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "a\nb", "\nabc"])
def test_regression_name_with_a_newline_is_rejected(name):
    # NAME_RE ends in '$', which also matches before a trailing newline: "abc\n" used to pass
    # and became a repository or account name that breaks listings and log lines.
    assert not is_valid_name(name)
    with pytest.raises(BadRequest):
        check_account_name(name)
