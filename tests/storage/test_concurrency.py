"""Several writers on one dataset at once, as real processes on real files; what is on disk afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.atomic import atomic_path, remove_stale_temps, temp_prefix
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.shards import ShardReader
from tests.conftest import ROOT
from tests.storage.videos import write_frame_folder, write_mp4


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.storage.writers", *args], cwd=ROOT, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_all(processes: list[subprocess.Popen]) -> list[str]:
    outs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def _temps(base: Path) -> list[Path]:
    return [p for p in base.rglob("*.tmp")]


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_ingests_of_one_dataset_keep_every_clip(tmp_path, data_root, writers):
    shared = [write_mp4(tmp_path / f"both{k}.mp4", n=6 + k).read_bytes() for k in range(3)]
    sources = []
    for w in range(writers):  # every writer ingests the same three clips and two of its own
        own = tmp_path / f"src{w}"
        own.mkdir()
        for k, data in enumerate(shared):
            (own / f"both{k}.mp4").write_bytes(data)
        write_mp4(own / f"w{w}a.mp4", n=5)
        write_frame_folder(own / f"w{w}b", n=4)
        sources.append(own)
    _wait_all([_start("ingest", str(data_root), "ds", str(src)) for src in sources])

    layout = DatasetLayout(data_root, "ds")
    manifest = {r.clip_id: r for r in read_manifest(layout)}
    expected = {f"both{k}" for k in range(3)} | {f"w{w}a" for w in range(writers)} | {f"w{w}b" for w in range(writers)}
    assert set(manifest) == expected
    assert all(r.status == "ok" for r in manifest.values()), {r.clip_id: r.error for r in manifest.values()}
    assert not layout.quarantine_dir.exists() or not list(layout.quarantine_dir.iterdir())  # no false quarantine
    for clip, record in manifest.items():
        reader = ShardReader(layout.shard_path("rgb", clip))
        assert len(reader) == record.n_frames and reader.read(0, 1)[0]["payload"].shape == (24, 32, 3)
    assert manifest["both2"].n_frames == 8 and manifest["w0b"].n_frames == 4
    assert _temps(layout.base) == []


def test_concurrent_manifest_upserts_lose_no_row_and_readers_never_fail(data_root):
    readers = [_start("read", str(data_root), "ds", "4")]
    _wait_all([_start("upsert", str(data_root), "ds", f"p{w}_", "20") for w in range(4)])
    (reads,) = _wait_all(readers)
    layout = DatasetLayout(data_root, "ds")
    ids = [r.clip_id for r in read_manifest(layout)]
    assert len(ids) == 80 and ids == sorted({f"p{w}_{k:03d}" for w in range(4) for k in range(20)})
    assert int(reads) > 10
    assert _temps(layout.base) == []


def test_four_concurrent_stage_writers_of_the_same_clips(data_root):
    _wait_all([_start("synth", str(data_root), "st", "3") for _ in range(4)])
    layout = DatasetLayout(data_root, "st")
    assert {r.clip_id for r in read_manifest(layout)} == {"s0", "s1", "s2"}
    for stage in ("rgb", "semantic", "instance", "flow"):
        for clip in ("s0", "s1", "s2"):
            assert len(ShardReader(layout.shard_path(stage, clip))) == 4
    assert _temps(layout.base) == []


def test_stale_temp_cleanup_removes_only_dead_writers_files(tmp_path):
    target = tmp_path / "c.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_temp = tmp_path / f"{temp_prefix('c.parquet').rsplit('.', 2)[0]}.{sleeper.pid}.abc.tmp"
        dead_temp = tmp_path / f"{temp_prefix('c.parquet').rsplit('.', 2)[0]}.{dead.pid}.abc.tmp"
        other_host = tmp_path / ".c.parquet.some-other-host.1.abc.tmp"
        for path in (live_temp, dead_temp, other_host):
            path.write_bytes(b"partial")
        with atomic_path(target) as mine:  # this process's own live temp survives a cleanup, too
            assert remove_stale_temps(tmp_path, "c.parquet") == 1
            assert mine.exists() and live_temp.exists() and other_host.exists() and not dead_temp.exists()
            mine.write_bytes(b"done")
        assert target.read_bytes() == b"done"
        old = time.time() - 2 * 24 * 3600
        os.utime(other_host, (old, old))
        assert remove_stale_temps(tmp_path, "c.parquet") == 1 and not other_host.exists() and live_temp.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
