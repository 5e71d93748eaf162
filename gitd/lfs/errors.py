"""Errors the LFS layer raises; each is a GitdError, so every transport renders it."""

from __future__ import annotations

from gitd.errors import GitdError, Unprocessable


class ObjectMismatch(Unprocessable):
    """The bytes sent for an object do not hash to its oid, or are not ``size`` bytes long.

    Nothing is stored when this is raised.
    """

    code = "ObjectMismatch"


class ObjectGone(GitdError):
    """The repository held the object, but storage lost it (fsck found it missing or corrupt)."""

    status = 410
    code = "ObjectGone"


class ObjectTooLarge(Unprocessable):
    code = "ObjectTooLarge"


class StorageUnavailable(GitdError):
    """The object store could not be reached or failed; the client may retry."""

    status = 503
    code = "StorageUnavailable"
