"""GitProcess on both event loops: on uvloop children start through gitd.git.popen
(Popen + pidfd), on the stdlib loop through loop.subprocess_exec."""

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitd.eventloop import loop_factory
from gitd.git import popen
from gitd.git.process import GitProcess

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
LOOPS = ["asyncio", "uvloop"]


def on_loop(kind: str, main):
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main())


async def drain(proc: GitProcess) -> bytes:
    out = bytearray()
    while chunks := await proc.read():
        for chunk in chunks:
            out += chunk
    return bytes(out)


@pytest.mark.parametrize("kind", LOOPS)
def test_stdin_to_stdout_with_flow_control_both_ways(kind):
    data = os.urandom(8 * 1024 * 1024)  # far more than the pipes hold: both directions must wait

    async def main():
        loop = asyncio.get_running_loop()
        assert popen.available(loop) == (kind == "uvloop")
        proc = await GitProcess.spawn(["cat"], ENV, stdin=True, limit=256 * 1024)

        async def feed():
            for i in range(0, len(data), 1 << 20):
                assert await proc.write(data[i:i + (1 << 20)])
            proc.close_stdin()

        feeding = asyncio.ensure_future(feed())
        out = await drain(proc)
        await feeding
        code = await proc.wait()
        proc.close()
        return out, code

    out, code = on_loop(kind, main)
    assert code == 0 and hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("kind", LOOPS)
def test_exit_status_and_stderr_are_reported(kind):
    async def main():
        proc = await GitProcess.spawn(["sh", "-c", "echo out; echo oops >&2; exit 3"], ENV, stdin=False, limit=1024)
        out = await drain(proc)
        await proc.stderr_closed()
        code = await proc.wait()
        proc.close()
        return out, proc.stderr, code

    assert on_loop(kind, main) == (b"out\n", b"oops\n", 3)


@pytest.mark.parametrize("kind", LOOPS)
def test_terminate_kills_the_process_group_and_reaps_it(kind):
    async def main():
        proc = await GitProcess.spawn(["sh", "-c", "sleep 30 & sleep 30"], ENV, stdin=True, limit=1024)
        pid = proc.pid
        started = time.monotonic()
        await proc.terminate(graceful=False)
        code = await proc.wait()
        proc.close()
        await asyncio.sleep(0)
        return pid, code, time.monotonic() - started

    pid, code, took = on_loop(kind, main)
    assert code == -9 and took < 5
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)






CHILDREN = """
import asyncio, sys
from gitd.eventloop import loop_factory, run
from gitd.git.process import GitProcess

async def main():
    for _ in range(5):
        proc = await GitProcess.spawn(["cat"], {"PATH": "/usr/bin:/bin"}, stdin=True, limit=1024)
        assert await proc.write(b"x")
        proc.close_stdin()
        while await proc.read():
            pass
        await proc.wait()
        proc.close()
    for _ in range(3):
        await asyncio.sleep(0.01)

run(main(), loop_factory(sys.argv[1]))
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (scripts/bootstrap.sh installs it)")
@pytest.mark.parametrize("kind", LOOPS)
def test_regression_child_pipes_are_closed_exactly_once(tmp_path, kind):
    # uvloop's pipe transports closed a pipe's descriptor twice (through the file object,
    # then through libuv). Between the two, another thread could be handed the same number
    # and lose it: a plugin's git subprocess failed with EBADF in the middle of a push.
    script = tmp_path / "children.py"
    script.write_text(CHILDREN)
    traced = subprocess.run(["strace", "-f", "-qq", "-e", "trace=close", sys.executable, str(script), kind],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3])
    assert traced.returncode == 0, traced.stderr[-2000:]
    assert "close(" in traced.stderr
    assert [line for line in traced.stderr.splitlines() if "EBADF" in line] == []
