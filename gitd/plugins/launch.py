"""The resource limits a supervised process (a space's app, an inference engine) runs under,
applied by a tiny launcher that then execs it (plugin API 1.4: ``gitd.limited_argv``, ``gitd.free_port``).

The daemon is multi-threaded, so limits are not set in a ``preexec_fn``: the app is started
as ``python -c LAUNCHER AS CPU NOFILE NPROC -- argv...`` (the app's own interpreter, which
its user can run; stdlib only), which sets the limits in the fresh process and replaces
itself with the app (the limits stay across exec).
"""

from __future__ import annotations

LAUNCHER = """
import os, resource, sys
names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_NPROC")
for name, value in zip(names, sys.argv[1:5]):
    value = int(value)
    if value > 0:
        soft, hard = resource.getrlimit(getattr(resource, name))
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(getattr(resource, name), (value, value if name != "RLIMIT_CPU" else hard))
os.execvp(sys.argv[6], sys.argv[6:])
"""


def limited(argv: list[str], *, memory: int, cpu: int, nofile: int, nproc: int) -> list[str]:
    """``argv`` (a Python interpreter and its arguments) wrapped in the launcher, run by that
    same interpreter (0: no limit of that kind)."""
    return [argv[0], "-c", LAUNCHER, str(memory), str(cpu), str(nofile), str(nproc), "--", *argv]


def free_port() -> int:
    """A TCP port free on the loopback interface now (for a child process to listen on)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
