import pytest

from gitd.hub.ignore import GitIgnore

RULES = """
# comment
*.log
!keep.log
/build/
**/cache/**
secret?.txt
docs/*.tmp
"""


@pytest.mark.parametrize(("path", "ignored"), [
    ("a.log", True), ("deep/x/a.log", True), ("keep.log", False), ("build/out.bin", True),
    ("src/build/out.bin", False), ("x/cache/y/z.bin", True), ("secret1.txt", True), ("secret12.txt", False),
    ("docs/a.tmp", True), ("docs/sub/a.tmp", False), ("README.md", False),
])
def test_gitignore_rules(path, ignored):
    assert GitIgnore(RULES).ignored(path) is ignored


def test_ignored_folder_cannot_be_unignored_inside():
    assert GitIgnore("logs/\n!logs/keep.txt\n").ignored("logs/keep.txt") is True


def test_regression_gitignore_patterns_cannot_backtrack():
    """'**a'*6+'b' against a 200-character path froze the event loop for minutes (regex backtracking)."""
    import time

    started = time.monotonic()
    ignore = GitIgnore("**a" * 6 + "b\n" + "*a" * 200 + "b\n")
    assert ignore.ignored("a" * 200) is False
    assert ignore.ignored("a/" * 1000 + "a") is False
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("text", ["x" * (64 * 1024 + 1), "*.a\n" * 1001, "a" * 1025])
def test_gitignore_text_is_capped(text):
    from gitd.errors import BadRequest

    with pytest.raises(BadRequest):
        GitIgnore(text)
