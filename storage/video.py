"""The one module that decodes and encodes video: files through PyAV (FFmpeg), frame folders through OpenCV.

Decoding streams frames (RGB uint8, H×W×3) so a long clip never sits in memory whole. Every failure is
a ``BadInputError`` that names the input and says what is wrong with it.
"""

from __future__ import annotations

from fractions import Fraction

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from storage.atomic import atomic_path
from storage.errors import BadInputError

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg"}
CITYSCAPES_FRAME = re.compile(r"^(?P<seq>.+)_(?P<frame>\d{6})_leftImg8bit\.(?:png|jpg)$")
_DIGITS = re.compile(r"(\d+)")
#: upper bounds on one decoded frame: a side, and the pixel count (8192x8192 RGB is 192 MiB per frame)
MAX_FRAME_SIDE = 16384
MAX_FRAME_PIXELS = 8192 * 8192


def size_problem(width: int, height: int, *, even: bool = False) -> str | None:
    """Why (width, height) cannot be a frame size, or None when it can."""
    if width <= 0 or height <= 0:
        return f"{width}x{height}: width and height must be positive"
    if max(width, height) > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
        return (f"{width}x{height} is larger than the {MAX_FRAME_SIDE}-pixel side / "
                f"{MAX_FRAME_PIXELS // 2**20} Mpixel frame bound")
    if even and (width % 2 or height % 2):
        return f"{width}x{height}: width and height must be even (H.264 video stores 2x2 chroma blocks)"
    return None


def parse_size(text: str, option: str = "--size", *, even: bool = False) -> tuple[int, int]:
    """``"WxH"`` → (width, height), or a ``ValueError`` that names the option and what is wrong."""
    match = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*", text or "")
    if not match:
        raise ValueError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 256x128")
    width, height = int(match.group(1)), int(match.group(2))
    problem = size_problem(width, height, even=even)
    if problem:
        raise ValueError(f"{option} {problem}")
    return width, height


class FramePolicy(BaseModel):
    """How decoded frames are brought to the dataset's size (config data, not code)."""

    size: tuple[int, int] | None = Field(default=None, description="(width, height) after the policy; None keeps the source size")
    mode: Literal["resize", "crop", "fit"] = Field(default="crop", description="resize: stretch; crop: scale to cover, centre-crop; fit: scale to fit, pad black")
    min_size: tuple[int, int] = Field(default=(16, 16), description="(width, height) below which a source is rejected")
    max_frames: int | None = Field(default=None, ge=1, description="keep at most this many frames; None: all")
    frame_fps: float = Field(default=17.0, gt=0, description="fps assumed for frame folders (Cityscapes sequences: 17)")

    @field_validator("size", "min_size")
    @classmethod
    def _valid_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None:
            problem = size_problem(*value)
            if problem:
                raise ValueError(f"frame size {problem}")
        return value

    @model_validator(mode="after")
    def _size_not_below_minimum(self) -> "FramePolicy":
        if self.size is not None and (self.size[0] < self.min_size[0] or self.size[1] < self.min_size[1]):
            raise ValueError(f"frame size {self.size[0]}x{self.size[1]} is below the minimum "
                             f"{self.min_size[0]}x{self.min_size[1]}")
        return self

    def apply(self, frame: np.ndarray) -> np.ndarray:
        if self.size is None:
            return frame
        out_w, out_h = self.size
        in_h, in_w = frame.shape[:2]
        if (in_w, in_h) == (out_w, out_h):
            return frame
        if self.mode == "resize":
            return cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_AREA)
        scale = (max if self.mode == "crop" else min)(out_w / in_w, out_h / in_h)
        new_w, new_h = max(1, round(in_w * scale)), max(1, round(in_h * scale))
        if self.mode == "crop":  # rounding must never leave the scaled frame smaller than the crop
            new_w, new_h = max(new_w, out_w), max(new_h, out_h)
        scaled = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if self.mode == "crop":
            y0, x0 = (new_h - out_h) // 2, (new_w - out_w) // 2
            return np.ascontiguousarray(scaled[y0:y0 + out_h, x0:x0 + out_w])
        canvas = np.zeros((out_h, out_w, 3), np.uint8)
        y0, x0 = (out_h - new_h) // 2, (out_w - new_w) // 2
        canvas[y0:y0 + new_h, x0:x0 + new_w] = scaled
        return canvas


@dataclass(frozen=True)
class VideoSource:
    """One clip to ingest: a video file or an ordered list of frame images."""

    name: str  # readable, unique within the ingest: becomes the clip id
    path: Path  # the file, or the folder holding the frames
    frames: tuple[Path, ...] = ()  # non-empty for frame sequences

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "frames", tuple(Path(f) for f in self.frames))

    @property
    def is_sequence(self) -> bool:
        return bool(self.frames)

    def files(self) -> list[Path]:
        return list(self.frames) if self.frames else [self.path]


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(path.name)]


def _sequence_sources(folder: Path) -> list[VideoSource]:
    images = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    if not images:
        return []
    groups: dict[str, list[Path]] = {}
    for image in images:  # Cityscapes leftImg8bit_sequence: <city>_<seq>_<frame>_leftImg8bit.png, many clips per folder
        match = CITYSCAPES_FRAME.match(image.name)
        groups.setdefault(match.group("seq") if match else folder.name, []).append(image)
    return [VideoSource(name=name, path=folder, frames=tuple(paths)) for name, paths in sorted(groups.items())]


def discover(src: str | os.PathLike[str]) -> list[VideoSource]:
    """The clips under ``src``: a video file, a folder of videos, or frame-sequence folders (searched recursively)."""
    src = Path(src)
    if not src.exists():
        raise BadInputError(str(src), "no such file or folder")
    if src.is_file():
        if src.suffix.lower() not in VIDEO_EXTENSIONS:
            raise BadInputError(str(src), f"not a video file (extension {src.suffix or 'none'}; expected one of {sorted(VIDEO_EXTENSIONS)})")
        return [VideoSource(name=src.stem, path=src)]
    sources: list[VideoSource] = []
    for folder in sorted([src, *[p for p in src.rglob("*") if p.is_dir()]]):
        sources += [VideoSource(name=p.stem, path=p) for p in sorted(folder.iterdir())
                    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
        sources += _sequence_sources(folder)
    if not sources:
        files = [p for p in src.rglob("*") if p.is_file()]
        raise BadInputError(str(src), f"no videos or frame sequences found ({len(files)} files, none with a video "
                                      f"extension {sorted(VIDEO_EXTENSIONS)} or image frames {sorted(IMAGE_EXTENSIONS)})")
    return sources


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    n_frames: int | None  # what the container declares; None when it does not say


def probe(source: VideoSource, policy: FramePolicy | None = None) -> VideoInfo:
    """What the container (or the first frame image's header) declares; a source over the frame bound is
    a ``BadInputError``, found before anything is decoded."""
    policy = policy or FramePolicy()
    if source.is_sequence:
        width, height = _image_size(source.frames[0])
        _check_max_size(str(source.frames[0]), width, height)
        return VideoInfo(policy.frame_fps, width, height, len(source.frames))
    _check_not_empty(source)
    try:
        with av.open(str(source.path)) as container:
            stream = _video_stream(container, source)
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            info = VideoInfo(fps, stream.codec_context.width, stream.codec_context.height, stream.frames or None)
    except (av.FFmpegError, OSError) as exc:
        raise BadInputError(str(source.path), f"unreadable or corrupt video: {exc}") from exc
    _check_max_size(str(source.path), info.width, info.height)
    return info


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header alone: a huge frame is refused before it is allocated."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError as exc:
        raise BadInputError(str(path), f"too large: {exc}") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise BadInputError(str(path), f"unreadable or corrupt image frame: {exc}") from exc


def _check_max_size(where: str, width: int, height: int) -> None:
    if max(width, height) > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
        raise BadInputError(where, f"too large: {width}x{height} frames exceed the decoded frame bound "
                                   f"({MAX_FRAME_SIDE}-pixel side, {MAX_FRAME_PIXELS // 2**20} Mpixel)")


def _check_not_empty(source: VideoSource) -> None:
    if source.path.is_file() and source.path.stat().st_size == 0:
        raise BadInputError(str(source.path), "empty file (0 bytes)")


def _video_stream(container: "av.container.InputContainer", source: VideoSource) -> "av.VideoStream":
    if not container.streams.video:
        raise BadInputError(str(source.path), "the file holds no video stream")
    return container.streams.video[0]


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(str(path), "unreadable or corrupt image frame")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_min_size(where: str, frame: np.ndarray, policy: FramePolicy) -> None:
    _check_max_size(where, frame.shape[1], frame.shape[0])
    min_w, min_h = policy.min_size
    if frame.shape[1] < min_w or frame.shape[0] < min_h:
        raise BadInputError(where, f"too small: {frame.shape[1]}x{frame.shape[0]} is below the minimum {min_w}x{min_h}")


def _decode_sequence(source: VideoSource, policy: FramePolicy) -> Iterator[np.ndarray]:
    size: tuple[int, int] | None = None
    for path in source.frames:
        frame = _read_image(path)
        if size is None:
            size = frame.shape[:2]
            _check_min_size(str(path), frame, policy)
        elif frame.shape[:2] != size:
            raise BadInputError(str(path), f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the "
                                           f"sequence's first frame ({size[1]}x{size[0]}, {source.frames[0].name})")
        yield frame


def _decode_file(source: VideoSource, policy: FramePolicy) -> Iterator[np.ndarray]:
    where = str(source.path)
    decoded = 0
    _check_not_empty(source)
    try:
        with av.open(where) as container:
            stream = _video_stream(container, source)
            declared = stream.frames or 0
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                if decoded == 0:
                    _check_min_size(where, image, policy)
                decoded += 1
                yield image
    except av.FFmpegError as exc:
        state = f"after {decoded} frames" if decoded else "before the first frame"
        raise BadInputError(where, f"corrupt or truncated video: decoding failed {state}: {exc}") from exc
    except OSError as exc:
        raise BadInputError(where, f"unreadable video: {exc}") from exc
    if decoded == 0:
        hint = f"; the container declares {declared}, so the file is truncated or corrupt" if declared else ""
        raise BadInputError(where, f"zero frames: the video decodes to no frames{hint}")
    if declared and decoded < declared * 0.98 - 1:
        raise BadInputError(where, f"truncated video: decoded {decoded} of the {declared} frames the container declares")


def decode(source: VideoSource, policy: FramePolicy | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames of ``source`` after the frame policy; raises ``BadInputError`` on bad input."""
    policy = policy or FramePolicy()
    frames = _decode_sequence(source, policy) if source.is_sequence else _decode_file(source, policy)
    for index, frame in enumerate(frames):
        if policy.max_frames is not None and index >= policy.max_frames:
            frames.close()
            return
        yield policy.apply(frame)


def pick_codec() -> str:
    """H.264 where PyAV's FFmpeg has an encoder for it, else MPEG-4 Part 2."""
    available = av.codec.codecs_available
    return "libx264" if "libx264" in available else ("h264" if "h264" in available else "mpeg4")


def stream_rate(fps: float) -> int | Fraction:
    """The frame rate as PyAV's ``add_stream`` takes it: an int, or a fraction (29.97 → 30000/1001); a float is
    refused by PyAV ('float' object has no attribute 'numerator')."""
    return round(fps) if abs(fps - round(fps)) < 1e-6 else Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """An mp4 (H.264, yuv420p, browser-playable) written frame by frame and placed atomically on close.

    Used as a context manager; an exception inside leaves no file behind.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, crf: int = 20) -> None:
        self.path, self.fps, self.crf, self.frames = Path(path), fps, crf, 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        if self._stream is None:
            codec = pick_codec()
            self._stream = self._container.add_stream(codec, rate=stream_rate(self.fps))
            height, width = frame.shape[:2]
            self._stream.width, self._stream.height = width - width % 2, height - height % 2  # yuv420p: even sizes
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        image = np.ascontiguousarray(frame[: self._stream.height, : self._stream.width])
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            if exc_type is None:
                if self._stream is None:
                    raise ValueError(f"no frames to encode into {self.path}")
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except BaseException as error:
            self._container.close()
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._container.close()
        self._atomic.__exit__(exc_type, exc, tb)


def encode(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float, crf: int = 20) -> Path:
    """Write RGB uint8 frames as an mp4 atomically; returns the path."""
    with VideoWriter(path, fps, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
