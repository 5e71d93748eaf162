"""Other servers for the end-to-end tests: git http-backend behind nginx + fcgiwrap (the
peer the clone benchmark uses), and a TCP relay that can stall a transfer mid-stream.

Both run on loopback as the current user, in a folder of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpBackendPeer:
    """nginx -> fcgiwrap -> git http-backend serving the bare repositories in ``root/repos``
    (read and push, no authentication)."""

    def __init__(self, root: Path):
        self.root = root
        self.repos = root / "repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def start(self) -> HttpBackendPeer:
        for tool in ("nginx", "fcgiwrap"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise RuntimeError(f"{tool} is not installed (apt-get install nginx fcgiwrap)")
        for sub in ("tmp", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        sock = self.root / "fcgiwrap.sock"
        fcgiwrap = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(self.root / "logs" / "fcgiwrap.log", "ab") as log:
            self.procs.append(subprocess.Popen([fcgiwrap, "-c", "4", "-s", f"unix:{sock}"], stdout=subprocess.DEVNULL,
                                               stderr=log, start_new_session=True))
        conf = self.root / "nginx.conf"
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        tmp = self.root / "tmp"
        conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 0;
        location / {{
            fastcgi_pass unix:{sock};
            fastcgi_buffering off;
            fastcgi_read_timeout 600s;
            fastcgi_param SCRIPT_FILENAME {HTTP_BACKEND};
            fastcgi_param GIT_PROJECT_ROOT {self.repos};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_USER anonymous;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param HTTP_GIT_PROTOCOL $http_git_protocol;
        }}
    }}
}}
""")
        self.procs.append(subprocess.Popen([nginx, "-p", str(self.root), "-c", str(conf), "-e",
                                            str(self.root / "logs" / "error.log")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"peer failed to start: {(self.root / 'logs' / 'error.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if sock.exists():
                    return self
            time.sleep(0.05)
        raise RuntimeError("peer did not start")

    def bare(self, name: str) -> Path:
        """The bare repository served as ``{url}/{name}.git`` (pushes allowed)."""
        path = self.repos / f"{name}.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
        subprocess.run(["git", "--git-dir", str(path), "config", "http.receivepack", "true"], check=True)
        return path

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


class StallingRelay:
    """A TCP relay to ``target_port`` on loopback. Once ``stall()`` is called, each
    connection forwards at most ``after`` more bytes of the server's answer and then holds
    the rest (the client sees a remote that stopped mid-pack) until ``release()``."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stalled: int | None = None
        self._released = threading.Event()
        self.held = threading.Event()  # set once a connection is being held
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> StallingRelay:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", self.port), self._loop)
        self._server = fut.result(10)
        return self

    def stall(self, after: int = 0) -> None:
        self._released.clear()
        self._stalled = after

    def release(self) -> None:
        self._stalled = None
        self._released.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answer: bool) -> None:
            budget = None
            try:
                while data := await src.read(65536):
                    if answer and self._stalled is not None:
                        budget = self._stalled if budget is None else budget
                        if len(data) > budget:
                            dst.write(data[:budget])
                            await dst.drain()
                            self.held.set()
                            while not self._released.is_set():
                                await asyncio.sleep(0.05)
                            data = data[budget:]
                        budget -= min(budget, len(data))
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    def stop(self) -> None:
        self.release()

        async def close() -> None:
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
