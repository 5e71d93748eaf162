"""Plugin API 1.2: ``context.git_command``, ``context.secrets``, ``context.create_repo``,
``RepoWriter.lfs_receive`` / ``lfs_missing`` and ``RepoView.lfs_open``, on the real
daemon parts (``gitd_harness``)."""

from __future__ import annotations

import hashlib
import io
import subprocess

import pytest

import gitd
from gitd.plugins.secrets import PluginSecrets, SecretError
from tests.support import Git

DATA = b"\x01object bytes\x02" * 100_000


class Nothing:
    def __init__(self, context: gitd.PluginContext):
        self.context = context


def test_api_version_is_1_2():
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 2)
    for name in ("GitCommand", "LfsRejected", "PluginSecrets", "SecretError"):
        assert name in gitd.__all__


def test_git_command_runs_git_as_the_daemon_does(gitd_harness, tmp_path):
    h = gitd_harness(Nothing, name="nothing")
    cmd = h.context.git_command(["fetch", "https://example.com/x.git"], git_dir=tmp_path)
    config = [cmd.argv[i + 1] for i, a in enumerate(cmd.argv) if a == "-c"]
    assert "protocol.allow=never" in config and "protocol.https.allow=always" in config
    assert "protocol.file.allow=always" not in config and "protocol.ext.allow=always" not in config
    assert "transfer.credentialsInUrl=die" in config and "credential.helper=" in config
    assert "fetch.fsckObjects=true" in config and "fetch.fsck.zeroPaddedFilemode=ignore" in config
    assert cmd.env["GIT_CONFIG_NOSYSTEM"] == "1" and cmd.env["GIT_TERMINAL_PROMPT"] == "0"
    assert cmd.env["GIT_DIR"] == str(tmp_path)
    with pytest.raises(ValueError, match="not a variable a plugin may set"):
        h.context.git_command(["fetch", "x"], git_dir=tmp_path, env={"LD_PRELOAD": "/tmp/x.so"})
    with pytest.raises(ValueError, match="unknown git protocol"):
        h.context.git_command(["fetch", "x"], git_dir=tmp_path, protocols=("ext",))
    strict = h.context.git_command(["index-pack", "--stdin", "--strict"], git_dir=tmp_path)
    assert "--strict=zeropaddedfilemode=ignore" in ",".join(strict.argv)


def test_git_command_refuses_other_transports_and_passwords_in_urls(gitd_harness, tmp_path):
    h = gitd_harness(Nothing, name="nothing")
    git = Git(tmp_path / "home")
    up = tmp_path / "up.git"
    git("init", "-q", "--bare", str(up))
    local = h.context.git_command(["ls-remote", f"file://{up}"], git_dir=None)
    refused = subprocess.run(local.argv, env=local.env, capture_output=True)
    assert refused.returncode != 0 and b"transport 'file' not allowed" in refused.stderr
    allowed = h.context.git_command(["ls-remote", f"file://{up}"], git_dir=None, protocols=("file",))
    assert subprocess.run(allowed.argv, env=allowed.env, capture_output=True).returncode == 0
    ext = h.context.git_command(["ls-remote", "ext::sh -c id"], git_dir=None, protocols=("file",))
    assert b"not allowed" in subprocess.run(ext.argv, env=ext.env, capture_output=True).stderr
    creds = h.context.git_command(["ls-remote", "http://user:secret@127.0.0.1:9/x.git"], git_dir=None)
    proc = subprocess.run(creds.argv, env=creds.env, capture_output=True)
    assert proc.returncode != 0 and b"credentials" in proc.stderr.lower()


def test_secrets_round_trip_per_plugin_and_fail_on_another_key(gitd_harness, tmp_path):
    h = gitd_harness(Nothing, name="nothing")
    token = h.context.secrets.encrypt("a token")
    assert "a token" not in token and h.context.secrets.decrypt(token) == b"a token"
    key = h.root / "secrets" / "plugins.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    with pytest.raises(SecretError):
        PluginSecrets(key, "other-plugin").decrypt(token)
    with pytest.raises(SecretError):
        PluginSecrets(tmp_path / "another.key", "nothing").decrypt(token)


def test_create_repo_makes_an_empty_repository_other_plugins_hear_of(gitd_harness):
    h = gitd_harness(Nothing, name="nothing")
    h.user("alice")
    repo = h.context.create_repo("alice/made", "dataset", private=True)
    assert repo.type == "dataset" and repo.private and repo.path.is_dir()
    assert h.context.find_repo("alice/made", "dataset") == repo
    assert [j.hook for j in h.jobs()] == ["gitd_repo_created"]


def test_lfs_receive_stores_verified_bytes_and_rejects_wrong_ones(gitd_harness):
    h = gitd_harness(Nothing, name="nothing")
    repo = h.repo("alice/model")
    writer = h.context.writer(repo)
    oid = hashlib.sha256(DATA).hexdigest()
    assert writer.lfs_missing([oid]) == {oid}
    wrong = DATA[:-1] + b"\x00"
    with pytest.raises(gitd.LfsRejected):
        writer.lfs_receive(oid, len(DATA), iter([wrong[:1000], wrong[1000:]]))
    assert writer.lfs_missing([oid]) == {oid}  # nothing stored
    assert not any((h.root / "lfs" / "objects").rglob(oid))
    with pytest.raises(gitd.LfsRejected):
        writer.lfs_receive(oid, len(DATA), iter([DATA[:-10]]))  # too short
    pointer = writer.lfs_receive(oid, len(DATA), (DATA[i:i + 65536] for i in range(0, len(DATA), 65536)))
    assert gitd.parse_lfs_pointer(pointer).oid == oid
    assert writer.lfs_missing([oid]) == set()
    # Another repository must prove it has the bytes too: knowing the id is not enough.
    other = h.context.writer(h.repo("alice/other"))
    with pytest.raises(gitd.LfsRejected):
        other.lfs_receive(oid, len(DATA), iter([wrong]))
    assert other.lfs_missing([oid]) == {oid}


def test_lfs_open_streams_a_held_object(gitd_harness):
    h = gitd_harness(Nothing, name="nothing")
    repo = h.repo("alice/model")
    oid = hashlib.sha256(DATA).hexdigest()
    h.context.writer(repo).lfs_receive(oid, len(DATA), iter([DATA]))
    view = h.view(repo)
    with view.lfs_open(oid) as f:
        out = io.BytesIO()
        while chunk := f.read(300_000):
            out.write(chunk)
        f.seek(5)
        assert f.read(3) == DATA[5:8]
    assert out.getvalue() == DATA
    with pytest.raises(gitd.LfsObjectMissing):
        h.view(h.repo("alice/other")).lfs_open(oid)
