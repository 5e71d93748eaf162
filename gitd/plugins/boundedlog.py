"""Bounded logs: a supervised process's output (a space's app, an inference engine) kept on disk
up to a size, with one older generation (plugin API 1.4: ``gitd.BoundedLog``).

An app that prints a gigabyte costs at most ``2 * limit`` bytes of disk: past the limit
the current file becomes ``NAME.1`` (replacing the previous one) and a new one starts.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class BoundedLog:
    def __init__(self, path: Path, limit: int):
        self.path = path
        self.limit = max(4096, int(limit))
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(data) > self.limit:
                if size:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                data = data[-self.limit:]
            with open(self.path, "ab") as f:
                f.write(data)

    def line(self, text: str) -> None:
        self.write(f"[gitd] {text}\n".encode())

    def clear(self) -> None:
        with self._lock:
            for p in (self.path, self.path.with_name(self.path.name + ".1")):
                p.unlink(missing_ok=True)

    def tail(self, size: int = 64 * 1024) -> bytes:
        """The last ``size`` bytes across both generations."""
        out = b""
        for p in (self.path, self.path.with_name(self.path.name + ".1")):
            if len(out) >= size:
                break
            try:
                with open(p, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    end = f.tell()
                    f.seek(max(0, end - (size - len(out))))
                    out = f.read() + out
            except FileNotFoundError:
                continue
        return out[-size:]

    def pump(self, fd: int) -> None:
        """Copy a pipe into the log until it closes (a thread's body)."""
        try:
            while chunk := os.read(fd, 65536):
                self.write(chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
