"""Reading the start of a file for its page: small blobs through pygit2, big ones through
``git cat-file`` so that only the shown part is ever in memory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitd.git.env import git_env
from gitd.hub.gitread import RepoReader

# Blobs up to this size are read whole through pygit2 (fast); bigger ones are streamed.
WHOLE = 4 * 1024 * 1024


def read_head(reader: RepoReader, path: Path, oid: str, size: int, limit: int) -> bytes:
    """The first ``limit`` bytes of blob ``oid`` (all of it when it is smaller), blocking."""
    if size <= WHOLE:
        return reader.read_blob(path, oid)[:limit]
    proc = subprocess.Popen(["git", "cat-file", "blob", oid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=git_env(git_dir=path))
    assert proc.stdout is not None
    try:
        out = bytearray()
        while len(out) < limit:
            chunk = proc.stdout.read(min(1 << 16, limit - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.wait()


def decode(data: bytes, *, cut: bool) -> str:
    """Text from bytes, as UTF-8 (invalid bytes replaced); a character cut in two at the end
    of a truncated read is dropped rather than shown as a replacement."""
    text = data.decode("utf-8", "replace")
    if cut and text.endswith("\ufffd"):
        text = text.rstrip("\ufffd")
    return text
