"""Errors that name the input they are about, so a user knows what to fix."""

from __future__ import annotations

import errno


class StorageError(RuntimeError):
    pass


class PathOutsideRootError(StorageError, ValueError):
    """A path (often from a manifest) would read or write outside the data root."""


class ManagedPathError(StorageError, ValueError):
    """A user-named output would overwrite a dataset's managed files (manifest, shards, quarantine)."""


class InvalidNameError(StorageError, ValueError):
    pass


class ShardError(StorageError):
    pass


class BadInputError(StorageError):
    """An input that can never succeed (corrupt, truncated, empty, too small): quarantine, don't retry."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class SourceError(StorageError, ValueError):
    """What was asked for is not there (no such source path, nothing to ingest in it): a wrong request, not a
    clip, so nothing is written and no manifest row is made."""


#: errors of the machine, not of the input: a full disk or quota, a file size limit, a missing permission,
#: a read-only or failing volume, no file handles left
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
                                errno.EIO, errno.EMFILE, errno.ENFILE})


class StorageEnvironmentError(StorageError):
    """The environment failed a write or read (disk full, permissions): the command fails naming the path;
    the clip is never marked bad for it."""


def environment_cause(exc: BaseException) -> OSError | None:
    """The OSError of the environment behind ``exc`` (itself or a cause in its chain), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
