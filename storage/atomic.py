"""Atomic file replacement: a reader sees the old file or the whole new one, never half of one.

Temp files are named ``.<target>.<host>.<pid>.<random>.tmp`` so that cleanup can tell a live writer's
temp (leave it) from a dead writer's (remove it), even with several writers in one folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: mkstemp makes 0600 files, outputs should be readable like any other
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
#: temps whose writer cannot be checked (another host, or an older name format) are stale after this long
FOREIGN_TEMP_MAX_AGE_S = 24 * 3600.0


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_prefix(target_name: str) -> str:
    return f".{target_name}.{_HOST}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success fsync it and ``os.replace`` it into place.

    Temp names start with '.' and end in '.tmp' so listings of shards never pick them up, and a crash
    leaves only such a hidden file behind (removed here on any exception, and by ``remove_stale_temps``
    once its writer is dead).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_is_dead(temp: Path, target_name: str, now: float) -> bool:
    rest = temp.name[len(target_name) + 2:]  # after ".<target>."
    host, _, tail = rest.partition(".")
    pid_text = tail.partition(".")[0]
    if host == _HOST and pid_text.isdigit():
        return not pid_alive(int(pid_text))
    try:
        return now - temp.stat().st_mtime > FOREIGN_TEMP_MAX_AGE_S
    except FileNotFoundError:
        return False


def remove_stale_temps(directory: str | os.PathLike[str], target_name: str = "*") -> int:
    """Delete temp files that dead writers of ``target_name`` left behind; returns how many were removed.

    A temp of a live writer on this host is never touched; one from another host (whose process cannot
    be checked) only once it is older than ``FOREIGN_TEMP_MAX_AGE_S``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed, now = 0, time.time()
    for temp in directory.glob(f".{target_name}.*.tmp"):
        name = target_name if target_name != "*" else _target_of(temp)
        if name and _writer_is_dead(temp, name, now):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    return removed


def _target_of(temp: Path) -> str:
    """The target name inside a temp name (targets of ours end in a known suffix)."""
    match = re.match(r"^\.(.+?\.(?:parquet|json|mp4|pt|npz))\.", temp.name)
    return match.group(1) if match else ""
