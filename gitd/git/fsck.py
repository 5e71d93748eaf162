"""git's object checks (fsck) for objects that reach a repository outside ``receive-pack``.

A push's objects are checked by receive-pack (``receive.fsckObjects`` and the
``receive.fsck.<msg-id>`` levels in ``GitRunner.hardened_config``). API commits write
objects themselves, so they run the same check on their new objects: ``git index-pack
--strict`` over a pack of them, with the same message levels, read here from the very
settings pushes get.
"""

from __future__ import annotations

from gitd.git.runner import GitRunner

RECEIVE_FSCK = "receive.fsck."


def fsck_message_levels(runner: GitRunner) -> dict[str, str]:
    """The ``receive.fsck.<msg-id>=<level>`` settings (and ``skipList``) pushes are checked with."""
    levels: dict[str, str] = {}
    args = runner.hardened_config()
    for flag, setting in zip(args[::2], args[1::2], strict=True):
        key, _, value = setting.partition("=")
        if flag == "-c" and key.lower().startswith(RECEIVE_FSCK):
            levels[key[len(RECEIVE_FSCK):]] = value
    return levels


def strict_option(runner: GitRunner) -> str:
    """``--strict[=<msg-id>=<level>,...]`` for ``git index-pack``, as receive-pack builds it."""
    levels = fsck_message_levels(runner)
    if not levels:
        return "--strict"
    return "--strict=" + ",".join(f"{k}={v}" for k, v in sorted(levels.items()))
