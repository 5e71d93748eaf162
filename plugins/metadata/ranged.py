"""Reading part of a file by ranges, within a byte budget; and the error a bad file gives."""

from __future__ import annotations

from collections.abc import Callable


class BadFile(Exception):
    """A file whose content cannot be read as what its name says (truncated, corrupt, over a
    cap). The message is for the repository's owner; the job goes on."""


class Ranged:
    """One file's content, read by ranges (``read(start, end)``: a ranged read of the Git
    LFS object on local disk or S3, or of a git blob). Counts the bytes it reads and
    refuses to read more than ``budget``."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, *, name: str, budget: int):
        self._read = read
        self.size = size
        self.name = name
        self.budget = budget
        self.bytes_read = 0

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``; BadFile if the file ends before ``end`` or the budget is spent."""
        if start < 0 or end < start:
            raise BadFile(f"{self.name}: bad range {start}-{end}")
        if end > self.size:
            raise BadFile(f"{self.name}: truncated: needs {end} bytes, the file has {self.size}")
        if self.bytes_read + (end - start) > self.budget:
            raise BadFile(f"{self.name}: reading it needs more than {self.budget} bytes, the limit")
        data = self._read(start, end) if end > start else b""
        self.bytes_read += len(data)
        if len(data) != end - start:
            raise BadFile(f"{self.name}: truncated: read {len(data)} of {end - start} bytes at {start}")
        return data


class Cursor:
    """Sequential reads over a ``Ranged`` through a window, so a format made of many small
    fields (GGUF's metadata) costs a few large ranged reads, not one per field."""

    def __init__(self, source: Ranged, *, window: int = 1 << 20, start: int = 0):
        self.source = source
        self.window = window
        self.pos = start
        self._buf = b""
        self._buf_start = start

    def take(self, n: int) -> bytes:
        if n < 0:
            raise BadFile(f"{self.source.name}: negative length")
        offset = self.pos - self._buf_start
        if offset + n > len(self._buf):
            end = min(self.source.size, max(self.pos + n, self.pos + self.window))
            if self.pos + n > self.source.size:
                raise BadFile(f"{self.source.name}: truncated: needs {self.pos + n} bytes, "
                              f"the file has {self.source.size}")
            keep = self._buf[offset:]
            self._buf = keep + self.source.read(self.pos + len(keep), end)
            self._buf_start = self.pos
            offset = 0
        self.pos += n
        return self._buf[offset:offset + n]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.source.size:
            raise BadFile(f"{self.source.name}: truncated: a field runs past the end of the file")
        offset = self.pos - self._buf_start
        if offset + n <= len(self._buf):
            self.pos += n
            return
        self.pos += n
        self._buf, self._buf_start = b"", self.pos
