import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from storage.errors import ShardError
from storage.layout import DatasetLayout
from storage.shards import ShardMeta, ShardReader, read_meta, write_shard
from storage.stages import write_stage

ROOT = Path(__file__).resolve().parents[2]


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield {"payload": rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),
               "occlusion": (rng.random((16, 24)) > 0.5).astype(np.uint8), "has_flow": i < n - 1, "score": float(i)}


def _meta(**kw) -> ShardMeta:
    base = dict(stage="rgb", clip_id="c", backend="t", fingerprint="fp", code_version="v",
                codecs={"payload": "png_rgb", "occlusion": "png_mask"}, row_group_size=4)
    return ShardMeta(**{**base, **kw})


def test_window_reads_match_what_was_written(tmp_path):
    frames = list(_frames(11))
    written = write_shard(tmp_path / "c.parquet", _meta(), iter(frames))
    assert (written.height, written.width) == (16, 24)
    reader = ShardReader(tmp_path / "c.parquet")
    assert len(reader) == 11
    for start, stop in [(0, 11), (3, 9), (4, 8), (7, 8), (10, 11)]:  # across and inside row-group boundaries
        window = reader.read(start, stop)
        assert [f["frame_idx"] for f in window] == list(range(start, stop))
        for got, want in zip(window, frames[start:stop]):
            assert np.array_equal(got["payload"], want["payload"])
            assert np.array_equal(got["occlusion"], want["occlusion"])
            assert got["has_flow"] == want["has_flow"] and got["score"] == want["score"]
    assert reader._file.num_row_groups == 3
    with pytest.raises(IndexError):
        reader.read(5, 12)


def test_same_frames_give_byte_identical_shards(tmp_path):
    write_shard(tmp_path / "a.parquet", _meta(), _frames(9))
    write_shard(tmp_path / "b.parquet", _meta(), _frames(9))
    assert hashlib.sha256((tmp_path / "a.parquet").read_bytes()).digest() == \
        hashlib.sha256((tmp_path / "b.parquet").read_bytes()).digest()


def test_mismatched_frame_size_is_an_error_and_leaves_nothing(tmp_path):
    def frames():
        yield {"payload": np.zeros((16, 24, 3), np.uint8), "occlusion": np.zeros((16, 24), np.uint8)}
        yield {"payload": np.zeros((16, 20, 3), np.uint8), "occlusion": np.zeros((16, 20), np.uint8)}

    with pytest.raises(ShardError, match="20x16"):
        write_shard(tmp_path / "c.parquet", _meta(), frames())
    assert list(tmp_path.iterdir()) == []


def test_writer_killed_mid_write_leaves_no_visible_shard_and_rerun_completes(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    script = f"""
import time, numpy as np
from storage.layout import DatasetLayout
from storage.stages import write_stage
def frames():
    for i in range(10_000):
        if i == 8:
            print("started", flush=True)
        if i >= 8:
            time.sleep(0.05)
        yield {{"payload": np.full((16, 24, 3), i % 255, np.uint8)}}
write_stage(DatasetLayout({str(tmp_path)!r}, "ds"), "rgb", "clip", backend="t", config={{}}, code_version="v",
            frames=frames)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.3)  # rows are being flushed into the temp file now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    target = layout.shard_path("rgb", "clip")
    assert not target.exists()
    leftovers = list(target.parent.iterdir())
    assert leftovers and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers)
    assert read_meta(target) is None

    result = write_stage(layout, "rgb", "clip", backend="t", config={}, code_version="v",
                         frames=lambda: ({"payload": np.full((16, 24, 3), i, np.uint8)} for i in range(5)))
    assert not result.skipped and len(ShardReader(target)) == 5
    assert [p.name for p in target.parent.iterdir()] == ["clip.parquet"]  # the stale temp file is gone


def test_stage_is_skipped_when_inputs_unchanged_and_rebuilt_when_config_changes(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    calls = []

    def frames():
        calls.append(1)
        return ({"payload": np.full((8, 8, 3), i, np.uint8)} for i in range(3))

    first = write_stage(layout, "rgb", "c", backend="t", config={"a": 1}, code_version="v", frames=frames)
    again = write_stage(layout, "rgb", "c", backend="t", config={"a": 1}, code_version="v", frames=frames)
    assert not first.skipped and again.skipped and len(calls) == 1 and again.n_frames == 3
    changed = write_stage(layout, "rgb", "c", backend="t", config={"a": 2}, code_version="v", frames=frames)
    assert not changed.skipped and len(calls) == 2
    downstream = write_stage(layout, "semantic", "c", backend="t", config={}, code_version="v",
                             upstream=[first.path], frames=lambda: ({"payload": np.zeros((8, 8), np.uint8)} for _ in range(3)))
    assert not downstream.skipped
    assert write_stage(layout, "semantic", "c", backend="t", config={}, code_version="v", upstream=[first.path],
                       frames=lambda: iter(())).skipped
