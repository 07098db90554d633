"""Advisory locks that let several writers (processes, threads, hosts) share one dataset safely.

Two kinds, both ``fcntl.flock`` on small files under ``<dataset>/.locks/`` (data contract,
docs/DESIGN.md, "several writers"):

- the *dataset lock* (``.locks/dataset.lock``) guards the manifest's read-modify-write and the
  quarantine records; it is held for milliseconds.
- a *shard lock* guards deciding about and writing one stage shard of one clip; two writers of the same
  shard take turns (the second then finds the shard current and skips), writers of different clips run in
  parallel. Shard locks are striped over a fixed number of files so the folder never grows with clips.

flock is per open file description, so two threads of one process exclude each other as well as two
processes; Linux NFS clients turn it into an NLM byte-range lock, so it also holds on the shared volumes
the cluster form uses. Because NFS's emulation is per process, a process-local ``threading.Lock`` is taken
first as well. Order is always shard lock, then dataset lock, never the reverse: no deadlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

LOCK_DIR = ".locks"
DATASET_LOCK = "dataset.lock"
SHARD_STRIPES = 64

_local_guard = threading.Lock()
_local: dict[str, threading.Lock] = {}
_held = threading.local()  # paths this thread holds: taking one again is a no-op (re-entrant)


def _thread_lock(path: Path) -> threading.Lock:
    with _local_guard:
        return _local.setdefault(str(path), threading.Lock())


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``path`` (created if missing; never deleted, so never raced)."""
    path = Path(path)
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if str(path) in held:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(str(path))
            try:
                yield path
            finally:
                held.discard(str(path))
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def shard_stripe(stage: str, clip_id: str) -> str:
    """The lock file name that guards ``stages/<stage>/<clip_id>.parquet``."""
    digest = hashlib.sha256(f"{stage}/{clip_id}".encode()).digest()
    return f"shard-{int.from_bytes(digest[:4], 'big') % SHARD_STRIPES:02d}.lock"
