"""Ingest throughput with 1, 2 and 4 concurrent writer processes on one dataset, and what the locks cost.

Each writer is a separate process ingesting its own clips (real mp4 files, decode + PNG shard + manifest
upsert per clip, as the ingest flow does) into the same dataset. The lock cost is measured two ways:
the same single-writer workload with the locks replaced by no-ops (alternating runs, medians), and the
raw cost of taking the locks one clip needs, against the time one clip takes.
Run: .venv/bin/python benchmarks/ingest_concurrency.py [--clips-per-writer 8] [--frames 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import storage.ingest  # noqa: E402
import storage.manifest  # noqa: E402
import storage.stages  # noqa: E402
from storage.ingest import IngestConfig, ingest_clip  # noqa: E402
from storage.layout import DatasetLayout  # noqa: E402
from storage.locks import file_lock  # noqa: E402
from storage.manifest import merge_records, read_manifest  # noqa: E402
from storage.video import FramePolicy, discover, encode  # noqa: E402

SCRIPT = Path(__file__).resolve()


def _videos(folder: Path, count: int, frames: int, seed: int) -> None:
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (96, 128 + frames, 3), dtype=np.uint8)
    for k in range(count):
        encode(folder / f"c{seed}_{k}.mp4", [np.ascontiguousarray(base[:, i:i + 128]) for i in range(frames)], 10)


def worker(root: str, src: str, locks: bool, ready: str, go: str) -> None:
    """Import everything, say ready, wait for the common start, then ingest (start-up is not timed)."""
    if not locks:  # the baseline: every lock a no-op (safe here only because writers' clips are disjoint)
        for module in (storage.ingest, storage.stages, storage.manifest):
            module.file_lock = lambda path: contextlib.nullcontext(path)
    layout = DatasetLayout(Path(root), "bench")
    config = IngestConfig(policy=FramePolicy(size=(128, 96)))
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    for source in discover(src):
        merge_records(layout, [ingest_clip(layout, source, source.name, config)])


def run(tmp: Path, sources: list[Path], locks: bool) -> float:
    root = tmp / "data"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    go = tmp / "go"
    go.unlink(missing_ok=True)
    ready = [tmp / f"ready{k}" for k in range(len(sources))]
    for flag in ready:
        flag.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "--worker", str(root), str(src), str(int(locks)),
                               str(flag), str(go)]) for src, flag in zip(sources, ready)]
    while not all(flag.exists() for flag in ready):
        time.sleep(0.01)
    start = time.perf_counter()
    go.touch()
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("a writer failed")
    seconds = time.perf_counter() - start
    clips = len(read_manifest(DatasetLayout(root, "bench")))
    expected = sum(len(list(s.iterdir())) for s in sources)
    if locks and clips != expected:
        raise RuntimeError(f"{clips} of {expected} clips in the manifest")
    return expected / seconds


def lock_overhead(tmp: Path, n: int = 2000) -> float:
    """Seconds for the locks one ingested clip takes (its rgb shard lock and the dataset lock)."""
    layout = DatasetLayout(tmp, "locks")
    start = time.perf_counter()
    for k in range(n):
        with file_lock(layout.shard_lock_path("rgb", f"c{k}")):
            with file_lock(layout.lock_path):
                pass
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips-per-writer", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vid2vid-ingest-bench-") as name:
        tmp = Path(name)
        sources = [tmp / f"src{w}" for w in range(4)]
        for w, src in enumerate(sources):
            _videos(src, args.clips_per_writer, args.frames, w)
        print(f"{args.clips_per_writer} clips per writer, {args.frames} frames of 128x96 each, one dataset")
        for writers in (1, 2, 4):
            rates = [run(tmp, sources[:writers], True) for _ in range(args.repeats)]
            print(f"{writers} writer(s): {statistics.median(rates):.2f} clips/s (median of {args.repeats})")
        locked, free = [], []
        for _ in range(args.repeats):  # alternate, so load changes on a shared machine hit both alike
            locked.append(run(tmp, sources[:1], True))
            free.append(run(tmp, sources[:1], False))
        lock_rate, free_rate = statistics.median(locked), statistics.median(free)
        print(f"1 writer without locks: {free_rate:.2f} clips/s; with locks: {lock_rate:.2f} clips/s "
              f"({(free_rate - lock_rate) / free_rate * 100:+.1f} % slower with locks)")
        per_clip = lock_overhead(tmp)
        print(f"locks per clip: {per_clip * 1e6:.0f} µs = {per_clip * lock_rate * 100:.3f} % of one clip's "
              f"ingest time ({1 / lock_rate * 1000:.0f} ms)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5], sys.argv[6])
    else:
        main()
