"""Per-space host names on the local runtime: ``NAME--NS.DOMAIN`` (``[plugins.spaces]
host_domain``) is the space ``NS/NAME``, served as ``/spaces/NS/NAME/app/...`` through the
daemon's routes (API 1.3's ``HostRoute``), so its access rules are the path's: a private
space is a 404 to whoever may not read it. The label is the name, ``--`` and the namespace,
in lower case with ``.`` and ``_`` as ``-`` (one DNS label, at most 63 characters). A label
two spaces would share names neither (no space can take another's host name)."""

from __future__ import annotations

import re

from .state import SpaceStates

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# host_label in SQL, over the spaces' rows ("ns/name" in the column name)
_SQL_LABEL = ("replace(replace(lower(substr(name, instr(name, '/') + 1) || '--' || "
              "substr(name, 1, instr(name, '/') - 1)), '.', '-'), '_', '-')")


def host_label(full_name: str) -> str | None:
    """``ns/name`` -> ``name--ns`` as a DNS label, or None when it cannot be one."""
    ns, name = full_name.split("/", 1)
    label = re.sub(r"[._]", "-", f"{name}--{ns}".lower())
    return label if _LABEL.match(label) else None


class SpaceHosts:
    def __init__(self, states: SpaceStates):
        self.states = states

    def target(self, label: str) -> str | None:
        """The path ``label`` stands for, or None (the request is served as it is). Runs on a
        worker thread for each request to a host in the domain: one query, no cache to go
        stale when a space is created, renamed or deleted."""
        if not _LABEL.match(label):
            return None
        rows = self.states.storage.query(f"SELECT name FROM {{prefix}}spaces WHERE {_SQL_LABEL} = ? LIMIT 2",
                                         [label])
        return f"/spaces/{rows[0]['name']}/app" if len(rows) == 1 else None
