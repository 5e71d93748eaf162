import pytest

from gitd.errors import BadRequest
from gitd.git.refname import check_branch_name, check_revision


@pytest.mark.parametrize("name", ["HEAD", "-x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
                                  ".hidden", "a/.x", "x.lock", "a/b.lock/c", "a/", "/a", "a//b", "a.", "@", "x@{1}",
                                  "ctl\x01", "refs/heads/x", "", "x" * 256])
def test_regression_branch_names_git_refuses_are_refused(name):
    """refs/heads/HEAD could be created through the Hub API."""
    with pytest.raises(BadRequest):
        check_branch_name(name)


@pytest.mark.parametrize("name", ["main", "feature/x", "v1.0", "a-b_c", "HEADS", "x@y", "caf\u00e9"])
def test_good_branch_names(name):
    assert check_branch_name(name) == name


def test_regression_long_revisions_are_a_bad_request():
    """A 5,000-character revision gave a 500 (and a multi-KB log line)."""
    with pytest.raises(BadRequest):
        check_revision("x" * 5000)
    assert check_revision("refs/pr/1") == "refs/pr/1"
