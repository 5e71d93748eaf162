"""The hook API's request format, and what it accepts from a hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitd.config import ConfigError
from gitd.hooks.api import MalformedHookCall, check_quarantine_env, parse_body, prepare_hook_endpoint
from gitd.plugins.events import RefUpdate

OLD, NEW = "0" * 40, "a" * 40


def test_a_hook_call_body_carries_env_options_and_ref_lines():
    body = (
        b"env GIT_OBJECT_DIRECTORY=/d/objects/tmp_objdir-incoming-x\n"
        b"option ci.skip\noption note=two words\n\n"
        + f"{OLD} {NEW} refs/heads/main\n{NEW} {OLD} refs/tags/v 1\n".encode()
    )
    env, options, updates = parse_body(body)
    assert env == {"GIT_OBJECT_DIRECTORY": "/d/objects/tmp_objdir-incoming-x"}
    assert options == ["ci.skip", "note=two words"]
    assert updates == [RefUpdate("refs/heads/main", OLD, NEW), RefUpdate("refs/tags/v 1", NEW, OLD)]


def test_header_values_are_unquoted():
    env, options, updates = parse_body(
        b"env GIT_QUARANTINE_PATH=/d/100%25/objects/q%0Ax\n"
        b"option a%0A%0A" + f"{OLD} {NEW} refs/heads/forged".encode() + b"\n"
        b"option %25%0D%09%7F%c3%a9 \xff\n\n" + f"{OLD} {NEW} refs/heads/main\n".encode())
    assert env == {"GIT_QUARANTINE_PATH": "/d/100%/objects/q\nx"}
    assert options == [f"a\n\n{OLD} {NEW} refs/heads/forged", "%\r\t\x7f\u00e9 \udcff"]
    assert updates == [RefUpdate("refs/heads/main", OLD, NEW)]


def test_a_body_without_header_lines_starts_with_the_blank_line():
    assert parse_body(f"\n{OLD} {NEW} refs/heads/main\n".encode()) == (
        {}, [], [RefUpdate("refs/heads/main", OLD, NEW)])
    assert parse_body(b"\n") == ({}, [], [])


@pytest.mark.parametrize("body", [
    b"no blank line at all",
    b"env PATH=/evil\n\n",                       # only git's quarantine variables
    b"env GIT_DIR\n\n",
    b"frobnicate x\n\n",
    f"\n{OLD} {NEW}\n".encode(),                 # missing ref
    f"\n{OLD} {NEW} HEAD\n".encode(),            # not under refs/
    f"\n{OLD} {'A' * 40} refs/heads/x\n".encode(),
    f"\n{OLD} {NEW[:39]} refs/heads/x\n".encode(),
    f"\n{OLD} {NEW} refs/heads/x\0y\n".encode(),
    b"option a\rb\n\n",                          # header values come quoted: no raw control character
    b"option a\tb\n\n",
    b"option 100%\n\n",                           # nor a "%" that starts no escape
    b"option %4\n\n",
    b"option %zz\n\n",
    b"env GIT_QUARANTINE_PATH=/q%0\n\n",
])
def test_malformed_calls_are_refused(body):
    with pytest.raises(MalformedHookCall):
        parse_body(body)


def test_quarantine_paths_must_be_inside_the_repository(tmp_path: Path):
    repo = tmp_path / "repos" / "01" / "1.git"
    (repo / "objects").mkdir(parents=True)
    good = {
        "GIT_OBJECT_DIRECTORY": str(repo / "objects" / "tmp_objdir-incoming-abc"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo / "objects"),
        "GIT_QUARANTINE_PATH": str(repo / "objects" / "tmp_objdir-incoming-abc"),
    }
    assert check_quarantine_env(dict(good), repo) == good
    other = tmp_path / "repos" / "02" / "2.git" / "objects"
    for key, value in [
        ("GIT_OBJECT_DIRECTORY", str(other)),
        ("GIT_OBJECT_DIRECTORY", str(repo / "objects" / ".." / ".." / "2.git" / "objects")),
        ("GIT_ALTERNATE_OBJECT_DIRECTORIES", f"{repo / 'objects'}:{other}"),
        ("GIT_QUARANTINE_PATH", "/tmp"),
    ]:
        with pytest.raises(MalformedHookCall, match=key):
            check_quarantine_env({**good, key: value}, repo)


def test_quarantine_paths_as_git_spells_them_are_accepted(tmp_path: Path):
    # git names the object store "<repo>/./objects" in the hooks' environment.
    repo = tmp_path / "repos" / "01" / "1.git"
    (repo / "objects" / "tmp_objdir-incoming-abc").mkdir(parents=True)
    env = {
        "GIT_OBJECT_DIRECTORY": f"{repo}/./objects/tmp_objdir-incoming-abc",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": f"{repo}/./objects",
        "GIT_QUARANTINE_PATH": f"{repo}/./objects/tmp_objdir-incoming-abc",
    }
    assert check_quarantine_env(dict(env), repo) == env


def test_regression_a_symlink_in_the_object_store_cannot_lead_outside(tmp_path: Path):
    repo = tmp_path / "repos" / "01" / "1.git"
    (repo / "objects").mkdir(parents=True)
    other = tmp_path / "repos" / "02" / "2.git" / "objects"
    other.mkdir(parents=True)
    (repo / "objects" / "tmp_objdir-incoming-evil").symlink_to(other)
    (tmp_path / "repos" / "01" / "1.git-evil" / "objects").mkdir(parents=True)
    for value in (f"{repo}/./objects/tmp_objdir-incoming-evil", f"{repo}-evil/objects",
                  f"{repo}/objects/../../1.git-evil/objects"):
        with pytest.raises(MalformedHookCall, match="GIT_OBJECT_DIRECTORY"):
            check_quarantine_env({"GIT_OBJECT_DIRECTORY": value}, repo)


def test_regression_relative_quarantine_paths_are_refused(tmp_path: Path):
    # A relative path would be resolved against the daemon's working directory, not the
    # repository's; it is refused instead of being interpreted.
    repo = tmp_path / "r.git"
    (repo / "objects").mkdir(parents=True)
    with pytest.raises(MalformedHookCall):
        check_quarantine_env({"GIT_OBJECT_DIRECTORY": "objects/tmp_objdir-incoming-x"}, repo)


def test_regression_a_quarantine_path_with_a_nul_byte_is_malformed(tmp_path: Path):
    # os.path.realpath raised ValueError (embedded null byte): a 500 instead of a malformed call.
    repo = tmp_path / "r.git"
    (repo / "objects").mkdir(parents=True)
    for value in (f"{repo}/objects/tmp\0x", f"{repo}/other\0/objects"):
        with pytest.raises(MalformedHookCall, match="GIT_OBJECT_DIRECTORY"):
            check_quarantine_env({"GIT_OBJECT_DIRECTORY": value}, repo)


def test_the_hook_endpoint_refuses_a_socket_path_the_kernel_cannot_bind(tmp_path: Path):
    deep = tmp_path / ("d" * 100) / "run" / "hooks.sock"
    with pytest.raises(ConfigError, match="use a data directory with a shorter path"):
        prepare_hook_endpoint(deep)


def test_the_hook_endpoint_starts_clean(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "hooks.sock").write_text("stale")
    prepare_hook_endpoint(run / "hooks.sock")
    assert not (run / "hooks.sock").exists()
