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
