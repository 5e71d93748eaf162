import asyncio
import subprocess

import pytest

from gitd.git.runner import GitRunner, sanitize_protocol


@pytest.mark.parametrize("value", ["version=2", "version=1", "version=2:foo=bar", "a=b:c=d"])
def test_well_formed_protocol_values_pass(value):
    assert sanitize_protocol(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "version=2 ", "version=2;rm -rf /", "version=2:$(id)", "version=2\n", "version=2\nGIT_DIR=/",
     "version", "=2", "version=2:", "version=../../x", "version=2:x", "v=" + "1" * 300, "version=2\x00"],
)
def test_hostile_protocol_values_are_dropped(value):
    assert sanitize_protocol(value) is None


def test_regression_protocol_value_with_trailing_newline_is_dropped(tmp_path):
    # The pattern ends in '$', which matched before a trailing newline, so "version=2\n"
    # used to reach git's environment verbatim (an SSH client can send any env value).
    runner = GitRunner(hooks_dir=tmp_path / "hooks")
    assert "GIT_PROTOCOL" not in runner.environment(protocol="version=2\n")
    assert runner.environment(protocol="version=2")["GIT_PROTOCOL"] == "version=2"


def test_git_gets_an_allow_listed_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", "/somewhere/else")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/tmp'")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    env = GitRunner(hooks_dir=tmp_path / "hooks").environment(protocol="version=2")
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TMPDIR", "TZ", "HOME", "GIT_CONFIG_NOSYSTEM",
                        "GIT_CONFIG_GLOBAL", "GIT_TERMINAL_PROMPT", "GIT_PROTOCOL"}


def test_runner_streams_and_reports_exit_status(tmp_path):
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    runner = GitRunner(hooks_dir=tmp_path / "hooks")

    async def body(data: bytes):
        yield data

    async def go(data: bytes) -> tuple[int, bytes, bytes]:
        out = bytearray()

        async def sink(chunk: bytes) -> None:
            out.extend(chunk)

        result = await runner.run("upload-pack", repo, ["--stateless-rpc"], stdin=body(data), sink=sink,
                                  protocol="version=2")
        return result.returncode, bytes(out), result.stderr

    code, out, _ = asyncio.run(go(b"0014command=ls-refs\n0000"))
    assert (code, out) == (0, b"0000")
    code, out, err = asyncio.run(go(b"zzzz"))
    assert code != 0 and out == b"" and b"protocol error" in err


def test_a_service_that_is_not_git_s_is_refused(tmp_path):
    with pytest.raises(ValueError):
        GitRunner(hooks_dir=tmp_path / "hooks").argv("daemon", tmp_path, [])
