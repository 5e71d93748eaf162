"""Parsing what SSH clients ask to run: every path form git and git-lfs send."""

from __future__ import annotations

import pytest

from gitd.names import RepoName
from gitd.ssh.command import Command, CommandError, parse_command, parse_repo_path

MODEL = RepoName("model", "alice", "tiny")


@pytest.mark.parametrize(
    "text",
    [
        "git-upload-pack '/alice/tiny.git'",  # ssh://host/alice/tiny.git
        "git-upload-pack 'alice/tiny.git'",  # host:alice/tiny.git
        "git-upload-pack '/alice/tiny'",
        "git-upload-pack alice/tiny",
        'git-upload-pack "alice/tiny.git"',
        "git upload-pack '/alice/tiny.git'",  # the form git-shell accepts too
        "git-upload-pack '/alice/tiny.git/'",
    ],
)
def test_every_git_path_form_names_the_same_repository(text):
    assert parse_command(text) == Command("git-upload-pack", MODEL)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/datasets/alice/corpus.git", RepoName("dataset", "alice", "corpus")),
        ("datasets/alice/corpus", RepoName("dataset", "alice", "corpus")),
        ("/spaces/org-1/demo.app", RepoName("space", "org-1", "demo.app")),
        ("codes/alice/tool_x.git", RepoName("code", "alice", "tool_x")),
    ],
)
def test_type_prefixes(path, expected):
    assert parse_repo_path(path) == expected
    assert str(expected) == path.strip("/").removesuffix(".git")


def test_each_git_verb_and_lfs_verbs():
    assert parse_command("git-receive-pack 'alice/tiny.git'").git_service == "receive-pack"
    assert parse_command("git-upload-archive '/alice/tiny.git'").git_service == "upload-archive"
    lfs = parse_command("git-lfs-authenticate /alice/tiny.git upload")
    assert lfs == Command("git-lfs-authenticate", MODEL, "upload") and lfs.git_service is None
    assert parse_command("git-lfs-transfer 'datasets/alice/tiny' download").repo.type == "dataset"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty command"),
        ("ls -la", "unknown command 'ls'"),
        ("sh -c 'git-upload-pack alice/tiny'", "unknown command 'sh'"),
        ("git-upload-pack 'alice/tiny", "unbalanced quotes"),
        ("git-upload-pack", "usage"),
        ("git-upload-pack a/b c/d", "usage"),
        ("git-upload-pack ~alice/tiny", "'~' paths are not supported"),
        ("git-upload-pack '../../etc/passwd'", "not a repository path"),
        ("git-upload-pack '/alice/../bob/x'", "not a repository path"),
        ("git-upload-pack '/alice/tiny/extra'", "not a repository path"),
        ("git-upload-pack 'models/alice/tiny'", "not a repository path"),
        ("git-upload-pack '/alice/.git'", "not a repository path"),
        ("git-lfs-authenticate alice/tiny delete", "usage"),
        ("git-lfs-transfer alice/tiny", "usage"),
        ("git-upload-pack 'alice/tiny'\nrm -rf /", "malformed"),
        ("git-upload-pack 'a/" + "b" * 5000 + "'", "malformed"),
    ],
)
def test_refused_commands(text, message):
    with pytest.raises(CommandError, match=message):
        parse_command(text)



def test_regression_error_messages_quote_long_commands_cut_short():
    # The whole path (up to the 4096-character command limit, escaped) came back in the message.
    for text in ["git-upload-pack '" + "\x01" * 4000 + "'", "git-upload-pack 'a/b/" + "c" * 4000 + "'"]:
        with pytest.raises(CommandError) as caught:
            parse_command(text)
        assert len(caught.value.message) < 300
    with pytest.raises(CommandError) as caught:
        parse_repo_path("x" * 10_000)
    assert len(caught.value.message) < 300
