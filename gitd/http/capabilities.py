"""Protocol v2 capability advertisements, remembered per repository configuration.

In protocol v2, ``git upload-pack --advertise-refs`` lists capabilities only, no refs:
its output depends on the git binary, the daemon's ``-c`` settings and the
repository's own config file, never on the repository's content. Every fetch and
ls-remote starts with this request, so answering it from memory saves one git process
per fetch. The key includes the config file's identity and modification time, so a
changed configuration is asked of git again.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

Key = tuple[str, int, int, int, str]


class CapabilityCache:
    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, bytes] = OrderedDict()

    @staticmethod
    def key(repo_path: Path, protocol: str) -> Key | None:
        try:
            st = (repo_path / "config").stat()
        except OSError:
            return None
        return (str(repo_path), st.st_ino, st.st_mtime_ns, st.st_size, protocol)

    def get(self, key: Key | None) -> bytes | None:
        if key is None:
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Key | None, advertisement: bytes) -> None:
        if key is None or not advertisement.startswith(b"000eversion 2\n"):
            return
        self._entries[key] = advertisement
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
