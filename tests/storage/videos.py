"""Real video files made by the tests: H.264 mp4 through our encoder, MJPEG avi through OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from storage.video import encode


def moving_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (5, 5), 0)
    return [np.ascontiguousarray(base[:, i:i + width]) for i in range(n)]


def write_mp4(path: Path, n: int = 12, width: int = 64, height: int = 48, fps: float = 10) -> Path:
    return encode(path, moving_frames(n, width, height), fps)


def write_avi(path: Path, n: int = 12, width: int = 64, height: int = 48, fps: float = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV could not open an MJPEG avi writer"
    for frame in moving_frames(n, width, height):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_frame_folder(folder: Path, n: int = 6, width: int = 64, height: int = 48, names: str = "{:05d}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(moving_frames(n, width, height)):
        cv2.imwrite(str(folder / names.format(i)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder
