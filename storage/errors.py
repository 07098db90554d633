"""Errors that name the input they are about, so a user knows what to fix."""

from __future__ import annotations


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
