"""A folder of lossless PNG frames (``000000.png``, ``000001.png``, ...), placed as a whole.

For post-production and exact comparisons (e.g. with the official code's per-frame results): every frame
is RGB uint8 as the model made it. The frames are written into a hidden temp folder beside the target and
the folder is renamed into place when the last frame is written, so a failed run leaves nothing behind and
a reader never sees half a set. An existing target is replaced only when it holds nothing but such frames
(a previous run's output); any other content is refused, so a mistyped folder is never emptied.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from storage.atomic import _UMASK, temp_prefix
from storage.codecs import decode_rgb, encode_rgb_png
from storage.errors import ManagedPathError, StorageError
from storage.layout import check_output_path
from storage.locations import data_root

#: the fewest digits of a frame name; more when a clip has more frames
MIN_DIGITS = 6
FRAME_NAME = re.compile(r"^\d+\.png$")


class FramesDirError(StorageError, ValueError):
    """A frames folder that cannot be written without losing something (a bad request: CLI exit 2)."""


def frame_name(index: int, digits: int = MIN_DIGITS) -> str:
    return f"{index:0{digits}d}.png"


def digits_for(n_frames: int) -> int:
    """Digits that keep every frame name of an ``n_frames`` clip the same length (names sort in order)."""
    return max(MIN_DIGITS, len(str(max(n_frames - 1, 0))))


def check_frames_dir(folder: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a user-named frames folder and refuse one that is or would replace managed data.

    Refused: the data root, any folder holding it, a folder directly under it (that is a dataset's folder),
    anything inside a dataset's managed files (``check_output_path``), and an existing folder that holds
    anything but frame PNGs. Returns the resolved path.
    """
    resolved = Path(folder).expanduser().resolve()
    root_resolved = data_root(root).resolve()
    if resolved == root_resolved or resolved in root_resolved.parents:
        raise ManagedPathError(f"refusing to write frames into {folder!r}: it resolves to {resolved}, which holds "
                               f"the data root {root_resolved}")
    if resolved.parent == root_resolved:
        raise ManagedPathError(f"refusing to write frames into {folder!r}: {resolved} is a dataset's folder directly "
                               f"under the data root; choose a folder elsewhere")
    check_output_path(resolved, root_resolved)
    if resolved.exists():
        if not resolved.is_dir():
            raise FramesDirError(f"--frames-dir {folder!r} ({resolved}) exists and is not a folder")
        other = sorted(p.name for p in resolved.iterdir() if not (p.is_file() and FRAME_NAME.match(p.name)))
        if other:
            raise FramesDirError(f"refusing to replace --frames-dir {folder!r} ({resolved}): it holds other files than "
                               f"frame PNGs ({', '.join(other[:5])}); choose a new or empty folder")
    return resolved


class FrameFolderWriter:
    """RGB uint8 frames -> ``folder/NNNNNN.png``; the folder appears (or replaces a previous set) on a clean
    close, and nothing is left on an exception. ``n_frames`` (when known) sets the name width."""

    def __init__(self, folder: str | os.PathLike[str], n_frames: int = 0) -> None:
        self.folder = Path(folder)
        self.digits = digits_for(n_frames)
        self.frames = 0
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(self.folder.name), suffix=".tmp", dir=self.folder.parent))

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
        path = self._tmp / frame_name(self.frames, self.digits)
        with open(path, "wb") as handle:
            handle.write(encode_rgb_png(np.ascontiguousarray(frame)))
            handle.flush()
            os.fsync(handle.fileno())
        self.frames += 1

    def __enter__(self) -> FrameFolderWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            if exc_type is None:
                if not self.frames:
                    raise ValueError(f"no frames to write into {self.folder}")
                self._place()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _place(self) -> None:
        os.chmod(self._tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; outputs are readable like any other
        old = None
        if self.folder.exists():  # a previous set of frames (check_frames_dir refused anything else)
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(self.folder.name) + "old.", suffix=".tmp",
                                        dir=self.folder.parent))
            os.replace(self.folder, old / "frames")
        try:
            os.replace(self._tmp, self.folder)
        except BaseException:
            if old is not None:
                os.replace(old / "frames", self.folder)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(OSError):
            fd = os.open(self.folder.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_frames_dir(folder: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The frames of a frames folder in order, RGB uint8."""
    for path in sorted(p for p in Path(folder).iterdir() if FRAME_NAME.match(p.name)):
        yield decode_rgb(path.read_bytes())
