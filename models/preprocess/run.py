"""Streaming a clip's frames through a backend in batches: one place for batching and flow windows.

Memory holds one batch of frames (plus one frame of overlap for flow), however long the clip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from models.preprocess.base import Frame, Output, PreprocessInputError


def _batches(frames: Iterable[Frame], size: int, expected: tuple[int, int] | None) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for i, frame in enumerate(frames):
        if expected is not None and tuple(frame.shape[:2]) != tuple(expected):
            raise PreprocessInputError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, the clip is "
                                       f"{expected[1]}x{expected[0]}")
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_frames(backend: Any, frames: Iterable[Frame], batch_size: int = 4,
               expected: tuple[int, int] | None = None) -> Iterator[Output]:
    """One output dict per frame from a semantic/instance/sketch/pose backend."""
    with backend if hasattr(backend, "__enter__") else contextlib.nullcontext():
        for batch in _batches(frames, batch_size, expected):
            yield from backend(batch)


def run_flow(backend: Any, frames: Iterable[Frame], batch_size: int = 4,
             expected: tuple[int, int] | None = None) -> Iterator[Output]:
    """Forward flow t→t+1 per frame; the last frame has no successor: zero flow, all occluded, has_flow False."""
    previous: Frame | None = None
    for batch in _batches(frames, batch_size, expected):
        sequence = ([previous] if previous is not None else []) + batch
        for flow, occlusion in backend(sequence[:-1], sequence[1:]) if len(sequence) > 1 else []:
            yield {"payload": flow, "occlusion": occlusion, "has_flow": True}
        previous = batch[-1]
    if previous is not None:
        h, w = previous.shape[:2]
        yield {"payload": np.zeros((2, h, w), np.float32), "occlusion": np.ones((h, w), np.uint8), "has_flow": False}
