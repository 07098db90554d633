"""Synthesized frames kept bit-exact for scoring: FFV1 in Matroska (lossless RGB).

The real frames are scored from their PNG shards; scoring the synthesized side from the H.264 review
video would add compression artefacts to one side only (blur lowers warp error, blocking raises FID).
The evaluation therefore writes this lossless copy beside each mp4 and scores that. FFV1 with the
``bgr0`` pixel format round-trips RGB uint8 exactly at any frame size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from storage.atomic import atomic_path
from storage.video import stream_rate

SUFFIX = ".lossless.mkv"


class LosslessWriter:
    """RGB uint8 frames -> ``path`` (FFV1/Matroska), placed atomically on a clean close."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path, self.fps, self.frames = Path(path), fps, 0
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._container = av.open(str(tmp), mode="w", format="matroska")
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
        if self._stream is None:
            self._stream = self._container.add_stream("ffv1", rate=stream_rate(self.fps))
            self._stream.height, self._stream.width = frame.shape[:2]
            self._stream.pix_fmt = "bgr0"
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def __enter__(self) -> LosslessWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            if exc_type is None:
                if self._stream is None:
                    raise ValueError(f"no frames to write into {self.path}")
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except BaseException as error:
            self._container.close()
            self._stack.__exit__(type(error), error, error.__traceback__)
            raise
        self._container.close()
        self._stack.__exit__(exc_type, exc, tb)


def lossless_path(video: str | os.PathLike[str]) -> Path:
    """Where the lossless copy of review video ``X.mp4`` lives: ``X.lossless.mkv``."""
    video = Path(video)
    return video.with_name(video.stem + SUFFIX)


def read_lossless(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The frames of a lossless file, RGB uint8, one at a time."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
