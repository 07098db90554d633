"""Study videos: snapshots of the evaluation's videos (a later evaluation overwrites those), cut to the
short-sequence length when asked, and attention-check pairs whose better side is known.

Every study video goes through the same encoder and is then padded to one common size, so neither the
bytes' origin nor ``Content-Length`` tells an attention check from a real trial."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from storage.video import VideoSource, decode, encode, probe


def _source(path: Path) -> VideoSource:
    return VideoSource(path.stem, path)


def snapshot(src: Path, dst: Path, max_frames: int | None) -> Path:
    """``src`` (its first ``max_frames`` frames when given) re-encoded to ``dst`` with the encoder the
    attention checks use: same container, codec and settings for every video a rater gets."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    info = probe(_source(src))
    frames = (f for _, f in zip(range(max_frames or 10**9), decode(_source(src))))
    return encode(dst, frames, info.fps)


PAD_BLOCK = 4096
_FREE_HEADER = 8  # an ISO-BMFF box: 4-byte big-endian size, then the type b"free"; players skip it


def pad_to_common_size(paths: list[Path]) -> int:
    """Append one ``free`` box to every mp4 so all have the same size (the largest, plus at least one
    header, rounded up to ``PAD_BLOCK``); returns that size."""
    target = max(p.stat().st_size for p in paths) + _FREE_HEADER
    target += -target % PAD_BLOCK
    for path in paths:
        gap = target - path.stat().st_size
        with open(path, "ab") as handle:
            handle.write(gap.to_bytes(4, "big") + b"free" + bytes(gap - _FREE_HEADER))
    return target


def attention_pair(side_by_side: Path, real_dst: Path, broken_dst: Path, max_frames: int | None,
                   seed: int = 0) -> tuple[Path, Path]:
    """From a side-by-side video (source | synthesized | real): the real clip, and the same clip visibly broken
    (coarse blocks, heavy noise, frames shuffled). A rater who watches prefers the real one."""
    info = probe(_source(side_by_side))
    frames = [f for _, f in zip(range(max_frames or 10**9), decode(_source(side_by_side)))]
    width = frames[0].shape[1] // 3
    real = [np.ascontiguousarray(f[:, 2 * width: 3 * width]) for f in frames]
    rng = np.random.default_rng(seed)
    broken = []
    for index in rng.permutation(len(real)):
        frame = real[index]
        h, w = frame.shape[:2]
        blocks = frame[:: 8, :: 8].repeat(8, axis=0).repeat(8, axis=1)[:h, :w].astype(np.int16)
        noisy = blocks + rng.integers(-90, 90, blocks.shape, dtype=np.int16)
        broken.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return encode(real_dst, real, info.fps), encode(broken_dst, broken, info.fps)
