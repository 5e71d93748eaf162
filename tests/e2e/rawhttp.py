"""Hand-made HTTP requests and git pkt-lines, for what the git client never sends.

``http.client`` sends the request target verbatim (no normalisation of ``..`` or
percent escapes), which is what path-trick tests need.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def request(base_url: str, method: str, target: str, *, headers: dict[str, str] | None = None,
            body: bytes | Iterable[bytes] | None = None, timeout: float = 60) -> Reply:
    """One request on a fresh connection; ``target`` is sent exactly as given."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        chunked = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes):
            hdrs.setdefault("Content-Length", str(len(body)))
        elif chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        for key, value in hdrs.items():
            conn.putheader(key, value)
        conn.endheaders()
        if isinstance(body, bytes):
            conn.send(body)
        elif chunked:
            assert body is not None
            for chunk in body:
                if chunk:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def send_and_hang_up(base_url: str, head: bytes, body: bytes) -> bytes:
    """Send raw request bytes, then close the connection without waiting for all of it."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
        return received


def basic(token: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pkt(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return b"%04x" % (len(raw) + 4) + raw


FLUSH = b"0000"
DELIM = b"0001"


def parse_pkts(data: bytes) -> list[bytes | None]:
    """Split a pkt-line stream; None stands for flush/delim packets."""
    out: list[bytes | None] = []
    i = 0
    while i + 4 <= len(data):
        size = int(data[i:i + 4], 16)
        if size < 4:
            out.append(None)
            i += 4
            continue
        out.append(data[i + 4:i + size])
        i += size
    return out


def upload_pack_v0_request(wants: list[str], caps: str = "ofs-delta side-band-64k no-progress") -> bytes:
    lines = [pkt(f"want {wants[0]} {caps}\n")] + [pkt(f"want {w}\n") for w in wants[1:]]
    return b"".join(lines) + FLUSH + pkt("done\n")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0
