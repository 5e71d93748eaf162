"""Errors that carry a message for the user apart from a detail for the server log."""

from __future__ import annotations


class GitdError(Exception):
    """An error a client may see.

    ``message`` is safe to show to the user; ``detail`` is for the server log only.
    ``code`` is a short machine-readable name (the Hub API's X-Error-Code uses it).
    """

    status = 500
    code = "InternalError"

    def __init__(self, message: str = "internal error", *, detail: str | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code
        self.retry_after = retry_after  # seconds, sent as Retry-After (429, 503)


class BadRequest(GitdError):
    status = 400
    code = "BadRequest"


class Unauthorized(GitdError):
    status = 401
    code = "Unauthorized"


class Forbidden(GitdError):
    status = 403
    code = "Forbidden"


class NotFound(GitdError):
    status = 404
    code = "NotFound"


class RequestTimeout(GitdError):
    status = 408
    code = "RequestTimeout"


class Conflict(GitdError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(GitdError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(GitdError):
    status = 415
    code = "UnsupportedMediaType"


class Unprocessable(GitdError):
    status = 422
    code = "Unprocessable"


class TooManyRequests(GitdError):
    status = 429
    code = "TooManyRequests"


class ServiceUnavailable(GitdError):
    status = 503
    code = "ServiceUnavailable"


class InsufficientStorage(GitdError):
    """The server's disk is full, or below the free-space watermark it keeps for itself."""

    status = 507
    code = "InsufficientStorage"

    def __init__(self, message: str = "the server is out of disk space; try again later", **kw):
        super().__init__(message, **kw)


class PushRejected(Exception):
    """Raised by a ``gitd_pre_receive`` plugin to refuse a push.

    The message is shown to the pusher (as ``remote:`` lines for git clients) and
    no ref moves.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
