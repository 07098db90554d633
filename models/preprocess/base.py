"""The interface every stage backend implements, and the errors that tell bad input from broken code.

A backend is a callable with a ``name`` that maps a batch of RGB frames (H×W×3 uint8) to one output dict
per frame, whose keys are the stage's payload columns (storage.stages.STAGE_CODECS) plus scalar columns
such as ``empty``. Flow backends take the frame *pairs* (t, t+1) instead, so windowing across batches
stays in one place (``run.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

Frame = np.ndarray  # H×W×3 uint8 RGB
Output = dict[str, Any]


class PreprocessInputError(ValueError):
    """Deterministic bad input (wrong frame size, unknown label ids, malformed import file): never retried.

    The orchestration layer quarantines the clip with this message.
    """


class PreprocessSetupError(RuntimeError):
    """A backend's dependency is not installed (named in the message): fails the stage, never retried."""


@runtime_checkable
class FrameBackend(Protocol):
    """semantic / instance / sketch / pose: one output dict per input frame."""

    name: str

    def __call__(self, frames: Sequence[Frame]) -> list[Output]: ...


@runtime_checkable
class FlowBackend(Protocol):
    """Forward flow t→t+1 for each pair: (2×H×W float32 dx,dy in pixels, H×W uint8 occlusion, 1 = invalid)."""

    name: str

    def __call__(self, first: Sequence[Frame], second: Sequence[Frame]) -> list[tuple[np.ndarray, np.ndarray]]: ...


def check_frames(frames: Sequence[Frame], size: tuple[int, int] | None = None) -> tuple[int, int]:
    """All frames RGB uint8 of one (height, width), equal to ``size`` when given; returns that size."""
    if not frames:
        raise PreprocessInputError("empty batch of frames")
    first = np.asarray(frames[0])
    expected = size or first.shape[:2]
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise PreprocessInputError(f"frame {i} must be H×W×3 uint8 RGB, got {frame.dtype} {frame.shape}")
        if frame.shape[:2] != tuple(expected):
            raise PreprocessInputError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, expected "
                                       f"{expected[1]}x{expected[0]}")
    return int(expected[0]), int(expected[1])


class PerFrameFileImport:
    """An import door that reads one file per frame from a clip's folder, in name order.

    Subclasses set ``pattern`` (the glob), ``kind`` (what the files are, for messages) and ``listing`` (how an
    empty folder is described)."""

    pattern: str
    kind: str
    listing: str

    def __init__(self, clip_dir: Path) -> None:
        self.files = sorted(Path(clip_dir).glob(self.pattern)) if Path(clip_dir).is_dir() else []
        if not self.files:
            raise PreprocessInputError(f"no {self.listing} files in {clip_dir}")
        self._next = 0

    def check_count(self, n_frames: int) -> None:
        if len(self.files) != n_frames:
            raise PreprocessInputError(f"{len(self.files)} {self.kind} files in {self.files[0].parent} for a clip of "
                                       f"{n_frames} frames")

    def next_file(self) -> Path:
        """The next frame's file; a clip longer than the folder is an error naming the count."""
        if self._next >= len(self.files):
            raise PreprocessInputError(f"only {len(self.files)} {self.kind} files for a longer clip")
        self._next += 1
        return self.files[self._next - 1]
