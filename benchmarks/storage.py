"""Storage benchmark: rgb shard write/read throughput, size against a PNG folder, random window reads.

Frames come from the synthetic street (textured, so PNG sizes are realistic). Prints one line per figure.
Run: .venv/bin/python benchmarks/storage.py [--frames 60] [--window-clip-frames 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.layout import DatasetLayout  # noqa: E402
from storage.shards import ShardReader  # noqa: E402
from storage.stages import write_stage  # noqa: E402
from storage.synthetic import StreetScene  # noqa: E402


def _frames(width: int, height: int, n: int) -> list[np.ndarray]:
    return [f["rgb"] for f in StreetScene(width, height, n, seed=1).frames()]


def _disk_bytes(paths: list[Path]) -> tuple[int, int]:
    """(apparent bytes, allocated bytes on disk) — a folder of small files pays for its filesystem blocks."""
    return sum(p.stat().st_size for p in paths), sum(p.stat().st_blocks * 512 for p in paths)


def throughput(tmp: Path, width: int, height: int, n: int) -> None:
    frames = _frames(width, height, n)
    raw_mb = sum(f.nbytes for f in frames) / 1e6
    layout = DatasetLayout(tmp, f"bench{width}")
    start = time.perf_counter()
    result = write_stage(layout, "rgb", "clip", backend="bench", config={}, code_version="bench", force=True,
                         frames=lambda: ({"payload": f} for f in frames))
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = sum(1 for _ in ShardReader(result.path).iter_frames())
    read_s = time.perf_counter() - start
    assert decoded == n
    png_dir = tmp / f"png{width}"
    png_dir.mkdir()
    start = time.perf_counter()
    for i, frame in enumerate(frames):  # vid2vid's layout: one PNG per frame, OpenCV defaults
        cv2.imwrite(str(png_dir / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    png_write_s = time.perf_counter() - start
    shard_app, shard_disk = _disk_bytes([result.path])
    png_app, png_disk = _disk_bytes(sorted(png_dir.iterdir()))
    print(f"rgb {width}x{height}, {n} frames: write {n / write_s:7.1f} frames/s {raw_mb / write_s:7.1f} MB/s (raw RGB) | "
          f"read+decode {n / read_s:7.1f} frames/s {raw_mb / read_s:7.1f} MB/s | PNG-folder write {n / png_write_s:7.1f} frames/s")
    print(f"rgb {width}x{height}: bytes/frame shard {shard_app / n:9.0f} (on disk {shard_disk / n:9.0f}) | "
          f"PNG folder {png_app / n:9.0f} (on disk {png_disk / n:9.0f}) | shard/PNG on disk {shard_disk / png_disk:.3f}")


def window_reads(tmp: Path, width: int, height: int, n: int, window: int = 8, trials: int = 20) -> None:
    frames = _frames(width, height, n)
    layout = DatasetLayout(tmp, "window")
    path = write_stage(layout, "rgb", "long", backend="bench", config={}, code_version="bench", force=True,
                       frames=lambda: ({"payload": f} for f in frames)).path
    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(trials):
        first = rng.randrange(0, n - window)
        got = ShardReader(path).read(first, first + window)
        assert len(got) == window
    window_s = (time.perf_counter() - start) / trials
    start = time.perf_counter()
    whole = ShardReader(path).read(0, n)
    whole_s = time.perf_counter() - start
    assert len(whole) == n
    print(f"random {window}-frame window from a {n}-frame {width}x{height} clip: {window_s * 1e3:.1f} ms "
          f"(open + read + decode) vs whole clip {whole_s * 1e3:.0f} ms -> {whole_s / window_s:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--window-clip-frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in [(512, 256), (1024, 512)]:
            throughput(Path(tmp), width, height, args.frames)
        window_reads(Path(tmp), 512, 256, args.window_clip_frames)


if __name__ == "__main__":
    main()
