"""The daemon streams LFS objects: its peak RSS does not grow with the object's size.
(bench/lfs.py shows the same for a 2 GB object.)"""

from __future__ import annotations

import hashlib
import http.client
import io
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.lfs_support import MIB, LfsClient, random_bytes, write_settings

SIZE = 160 * MIB
BLOCK = random_bytes(MIB)


class Repeated(io.RawIOBase):
    """SIZE bytes made of BLOCK, produced as they are read."""

    def __init__(self) -> None:
        self.left = SIZE

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        at = (SIZE - self.left) % len(BLOCK)
        n = min(len(buffer), self.left, len(BLOCK) - at)
        buffer[:n] = BLOCK[at:at + n]
        self.left -= n
        return n


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _request(method: str, url: str, headers: dict[str, str], body=None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    conn.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
    return conn.getresponse()


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_peak_rss_stays_flat_for_a_large_object(kind, make_daemon, request):
    d = make_daemon(start=False)
    if kind == "s3":
        seaweed = request.getfixturevalue("seaweed")
        write_settings(d.data, seaweed.gitd_settings(seaweed.make_bucket("gitd-memory")))
    d.start()
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    warm = random_bytes(100_000)
    assert client.upload(warm).status == 200 and client.download(hashlib.sha256(warm).hexdigest(), 100_000) == warm
    before = peak_rss(d.proc.pid)

    h = hashlib.sha256()
    for _ in range(SIZE // MIB):
        h.update(BLOCK)
    oid = h.hexdigest()
    action = client.batch("upload", [(oid, SIZE)]).json()["objects"][0]["actions"]["upload"]
    put = _request("PUT", action["href"], {**action["header"], "Content-Length": str(SIZE)}, Repeated())
    assert put.status == 200, put.read()
    response = _request("GET", f"{client.base}/objects/{oid}", client.auth())
    got = hashlib.sha256()
    while block := response.read(MIB):
        got.update(block)
    assert response.status == 200 and got.hexdigest() == oid

    grown = peak_rss(d.proc.pid) - before
    assert grown < 48 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB for a {SIZE // MIB} MiB object"
