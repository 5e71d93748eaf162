"""``gitd user passwd NAME``: set a user's password for the web UI's login.

The password is read from standard input (``--stdin``, for scripts: the first line), or
asked twice at the terminal without echo. Setting it ends the user's browser sessions.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any


class PasswordInputError(Exception):
    pass


def read_password(use_stdin: bool) -> str:
    if use_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise PasswordInputError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise PasswordInputError("the two passwords differ")
    return first


def add_passwd_command(users: Any, leaf: Callable[..., argparse.ArgumentParser],
                       run: Callable[[argparse.Namespace], None]) -> None:
    p = leaf(users, "passwd", run, "set a user's password for the web UI (read from stdin or asked twice)")
    p.add_argument("name")
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")
