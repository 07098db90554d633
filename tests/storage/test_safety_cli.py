"""What a careless user sees through `vid2vid`: refusals with a clear line and exit status, nothing lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from tests.storage.videos import write_mp4


@pytest.mark.parametrize("size, message", [("0x32", "must be positive"), ("-8x8", "must be positive"),
                                           ("90000x90000", "larger than")])
def test_invalid_sizes_exit_2_with_a_clear_line(tmp_path, data_root, size, message, vid2vid):
    write_mp4(tmp_path / "v.mp4", n=3)
    done = vid2vid("--data-root", str(data_root), "ingest", str(tmp_path / "v.mp4"), "--dataset", "d", f"--size={size}")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (data_root / "d").exists()
    if size != "0x32":
        return
    synth = vid2vid("--data-root", str(data_root), "synth", "--dataset", "s", "--size", "63x32")
    assert synth.returncode == 2 and "must be even" in synth.stderr


@pytest.mark.usefixtures("prefect_server")
def test_careless_commands_leave_the_dataset_intact(tmp_path, data_root, vid2vid):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    write_mp4(tmp_path / "a" / "clip.mp4", n=5)
    ok = vid2vid("--data-root", str(data_root), "ingest", str(tmp_path / "a"), "--dataset", "d", "--size", "32x24")
    assert ok.returncode == 0, ok.stderr
    layout = DatasetLayout(data_root, "d")
    shard, manifest = layout.shard_path("rgb", "clip"), layout.manifest_path
    before = (shard.read_bytes(), manifest.read_bytes())

    (tmp_path / "b" / "clip.mp4").write_bytes(b"not a video at all" * 40)  # corrupt file, same clip name
    bad = vid2vid("--data-root", str(data_root), "ingest", str(tmp_path / "b"), "--dataset", "d", "--size", "32x24")
    assert bad.returncode == 1 and "was kept" in bad.stdout and str(tmp_path / "b" / "clip.mp4") in bad.stdout
    assert (shard.read_bytes(), manifest.read_bytes()) == before
    assert [r.status for r in read_manifest(layout)] == ["ok"]

    out = vid2vid("--data-root", str(data_root), "synthesize", "--checkpoint", str(tmp_path / "none.pt"),
                  "--dataset", "d", "--clip", "clip", "--out", str(shard))
    assert out.returncode == 2 and "refusing to write" in out.stderr
    assert (shard.read_bytes(), manifest.read_bytes()) == before

    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, layout.base / "stages" / "semantic")
    linked = vid2vid("--data-root", str(data_root), "ingest", str(tmp_path / "a"), "--dataset", "d", "--size", "32x24")
    assert linked.returncode == 2 and "outside the data root" in linked.stderr
    assert list(outside.iterdir()) == [] and (shard.read_bytes(), manifest.read_bytes()) == before
