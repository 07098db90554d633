"""The ingest and synth flows end to end against a real Prefect server, and the `vid2vid` CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
from prefect.client.orchestration import get_client

from flows.ingest import IngestParams, SynthParams, ingest_flow, synth_flow
from storage.ingest import IngestConfig
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.shards import ShardReader
from storage.video import FramePolicy
from tests.conftest import run_cli
from tests.storage.videos import write_avi, write_frame_folder, write_mp4

pytestmark = pytest.mark.usefixtures("prefect_server")


def _videos(folder: Path) -> Path:
    folder.mkdir()
    write_mp4(folder / "good_mp4.mp4", n=10)
    write_avi(folder / "good_avi.avi", n=8)
    write_frame_folder(folder / "good_frames", n=5)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    avi = write_avi(folder / "truncated.avi", n=20).read_bytes()
    (folder / "truncated.avi").write_bytes(avi[: len(avi) // 2])
    (folder / "empty.mov").write_bytes(b"")
    write_mp4(folder / "tiny.mp4", n=4, width=8, height=8)
    (folder / "readme.txt").write_text("not a video")
    return folder


def _shard_state(layout: DatasetLayout) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(layout.stage_dir("rgb").iterdir())}


def test_bad_clips_are_quarantined_while_good_ones_ingest_and_rebuild_skips(tmp_path, data_root):
    src = _videos(tmp_path / "videos")
    params = IngestParams(src=str(src), dataset="mixed", data_root=str(data_root),
                          config=IngestConfig(policy=FramePolicy(size=(32, 24))))
    summary = ingest_flow(params)
    layout = DatasetLayout(data_root, "mixed")

    assert summary.clips_ok == 3 and summary.frames == 10 + 8 + 5
    assert set(summary.quarantined) == {"corrupt", "truncated", "empty", "tiny"}
    assert "truncated" in summary.quarantined["truncated"] and "8 of the 20" not in summary.quarantined["corrupt"]
    assert "too small" in summary.quarantined["tiny"] and "empty file" in summary.quarantined["empty"]
    for clip, reason in summary.quarantined.items():
        saved = json.loads(layout.quarantine_path(clip).read_text())
        assert saved["error"] == reason and (clip in reason or Path(saved["source"]).name in reason)
        assert not layout.shard_path("rgb", clip).exists()
    assert sorted(p.name for p in layout.stage_dir("rgb").iterdir()) == \
        ["good_avi.parquet", "good_frames.parquet", "good_mp4.parquet"]
    manifest = {r.clip_id: r for r in read_manifest(layout)}
    assert manifest["good_mp4"].status == "ok" and manifest["corrupt"].status == "quarantined"
    assert (manifest["good_mp4"].width, manifest["good_mp4"].height, manifest["good_mp4"].n_frames) == (32, 24, 10)
    frame = ShardReader(layout.shard_path("rgb", "good_avi")).read(0, 1)[0]["payload"]
    assert frame.shape == (24, 32, 3) and frame.std() > 5
    assert {r.split for r in manifest.values()} <= {"train", "val"}

    before = _shard_state(layout)
    manifest_bytes = layout.manifest_path.read_bytes()
    again = ingest_flow(params)
    assert again.clips_ok == 3
    assert _shard_state(layout) == before  # same inode and mtime: skipped, not rewritten
    assert layout.manifest_path.read_bytes() == manifest_bytes

    for path in layout.stage_dir("rgb").iterdir():
        path.unlink()
    ingest_flow(params)
    rebuilt = _shard_state(layout)
    assert {k: v[2] for k, v in rebuilt.items()} == {k: v[2] for k, v in before.items()}  # byte-identical rebuild


def test_synth_flow_publishes_its_table_and_is_idempotent(data_root):
    params = SynthParams(dataset="street", data_root=str(data_root), clips=2, frames=4, size=(64, 32))
    summary = synth_flow(params)
    layout = DatasetLayout(data_root, "street")
    assert summary.clips_ok == 2 and summary.frames == 8
    assert layout.stages() == ["flow", "instance", "rgb", "semantic"]
    flow = ShardReader(layout.shard_path("flow", "street_0000_000")).read(0, 1)[0]
    assert flow["payload"].shape == (2, 32, 64) and flow["has_flow"] and np.abs(flow["payload"]).max() > 0
    mtimes = {p: p.stat().st_mtime_ns for p in layout.base.rglob("*.parquet") if p.parent.parent.name == "stages"}
    synth_flow(params)
    assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}

    async def latest_artifact():
        async with get_client() as client:
            return await client.read_latest_artifacts()
    import asyncio
    artifacts = {a.key: a for a in asyncio.run(latest_artifact())}
    assert "synth-street" in artifacts and "street_0000_001" in str(artifacts["synth-street"].data)


def test_cli_ingest_synth_and_info(tmp_path, data_root, vid2vid):
    src = tmp_path / "one"
    src.mkdir()
    write_mp4(src / "clip.mp4", n=6)
    # the installed console script once, as a user runs it; the other commands in this process
    done = run_cli("--data-root", str(data_root), "ingest", str(src), "--dataset", "cli", "--size", "32x24")
    assert done.returncode == 0, done.stderr
    assert "1 clip(s) ingested, 6 frames, 0 quarantined" in done.stdout

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"garbage" * 50)
    failed = vid2vid("--data-root", str(data_root), "ingest", str(bad), "--dataset", "cli2")
    assert failed.returncode == 1 and "quarantined broken" in failed.stdout
    assert f"error: no clip of {bad} was ingested" in failed.stderr and "Traceback" not in failed.stderr

    synth = vid2vid("--data-root", str(data_root), "synth", "--dataset", "st", "--clips", "1", "--frames", "3",
                    "--size", "64x32", "--seed", "2")
    assert synth.returncode == 0, synth.stderr
    info = vid2vid("--data-root", str(data_root), "info", "--dataset", "st")
    assert info.returncode == 0 and "street_0002_000" in info.stdout and "semantic" in info.stdout
    missing = vid2vid("--data-root", str(data_root), "info", "--dataset", "nope")
    assert missing.returncode == 2 and "no manifest" in missing.stderr and "Traceback" not in missing.stderr
