"""fsck_settings: which object checks refuse a push, as git settings and as an option."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitd.config import Config, ConfigError
from gitd.git.fsck import FsckSettings, fsck_settings, parse_ignore
from gitd.git.runner import GitRunner
from tests.old_history import ODDITIES, build_old_history
from tests.support import Git


def test_the_default_lets_the_historical_oddities_through_and_checks_the_rest():
    settings = fsck_settings(Config.load())
    assert settings.enabled and set(settings.ignore) == set(ODDITIES)
    config = settings.git_config()
    assert "receive.fsckObjects=true" in config and "fetch.fsckObjects=true" in config
    assert {f"receive.fsck.{i}=ignore" for i in ODDITIES} <= set(config)
    assert {f"fetch.fsck.{i}=ignore" for i in ODDITIES} | {f"fsck.{i}=ignore" for i in ODDITIES} <= set(config)


def test_the_runner_gives_receive_pack_the_settings(tmp_path: Path):
    runner = GitRunner(hooks_dir=tmp_path / "hooks", fsck=FsckSettings(True, ("badTimezone",)))
    argv = runner.argv("receive-pack", tmp_path / "r.git", [])
    assert "receive.fsckObjects=true" in argv and "receive.fsck.badTimezone=ignore" in argv
    off = GitRunner(hooks_dir=tmp_path / "hooks", fsck=FsckSettings(False, ())).argv("receive-pack", tmp_path, [])
    assert "receive.fsckObjects=false" in off


def test_ids_are_matched_as_git_does_and_spelled_as_documented():
    assert parse_ignore(["ZEROPADDEDFILEMODE", "badtimezone", "badTimezone"]) == ("zeroPaddedFilemode", "badTimezone")
    config = Config.load(environ={"GITD_GIT__FSCK_IGNORE": "badDate,missingEmail"})
    assert fsck_settings(config).ignore == ("badDate", "missingEmail")


@pytest.mark.parametrize("value", [
    "gitmodulesUrl", "gitmodulesPath", "hasDotgit", "hasDotdot", "fullPathname", "symlinkPointsToGitDir",
    "gitmodulesSymlink", "duplicateEntries", "badFilemode", "nullSha1", "nulInHeader",
    "zeroPaddedFilemode=ignore\n[core]", "", 7, "noSuchCheck",
])
def test_checks_that_protect_clients_cannot_be_ignored(value):
    with pytest.raises(ConfigError, match="cannot be ignored"):
        parse_ignore([value])


def test_the_strict_option_checks_a_pack_as_pushes_are_checked(tmp_path: Path):
    git = Git(tmp_path / "home")
    made = build_old_history(git, tmp_path / "old")
    pack = git("pack-objects", "--stdout", "--revs", cwd=tmp_path / "old", input=f"{made['third']}\n".encode()).stdout

    def index(option: str) -> subprocess.CompletedProcess:
        target = tmp_path / f"t{len(list(tmp_path.iterdir()))}.git"
        git("init", "-q", "--bare", str(target))
        return git("index-pack", option, "--stdin", cwd=target, input=pack, check=False)

    strict = index("--strict")
    assert strict.returncode != 0 and b"fsck error" in strict.stderr
    assert index(fsck_settings(Config.load()).strict_option()).returncode == 0
    assert FsckSettings(True, ()).strict_option() == "--strict"
