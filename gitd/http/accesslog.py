"""The access log (``server.access_log``), with the credentials links carry left out.

The daemon hands out links with credentials in their query strings: LFS actions and
multipart parts carry a signed ``token``, presigned storage links a signature. aiohttp's
own access log writes every request line as it came, so anyone who can read the log could
replay them; this logger writes the same line with such values replaced by ``REDACTED``
(and no Referer, which can carry them too).
"""

from __future__ import annotations

import datetime
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Query parameters whose values are credentials (compared case-insensitively).
SECRET_PARAMS = ("token", "access_token", "signature", "sig", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token", "awsaccesskeyid", "password", "key")
_SECRET_RE = re.compile(r"(?i)(^|[?&;])(" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=[^&;#]*")


def redact(path_qs: str) -> str:
    """``path_qs`` with the values of credential parameters replaced by REDACTED."""
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path_qs
    return path + "?" + _SECRET_RE.sub(r"\1\2=REDACTED", query)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("[%d/%b/%Y:%H:%M:%S +0000]")
        line = _printable(f"{request.method} {redact(request.raw_path)} "
                          f"HTTP/{request.version.major}.{request.version.minor}")
        agent = _printable(request.headers.get("User-Agent", "-"))
        self.logger.info('%s %s "%s" %s %s %.6f "%s"', request.remote or "-", now, line, response.status,
                         response.body_length, time, agent)
