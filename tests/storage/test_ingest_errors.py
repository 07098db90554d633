"""Sources and the environment are not the clip (issue 24): a mistyped source is a wrong request that touches
nothing; a full disk (here: a file size limit, EFBIG) fails the command naming the path and never marks the good
clip quarantined; a re-ingest at another size drops the clip's stale stage shards. Real files, the real CLI."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from storage.ingest import IngestConfig, ingest_clip
from storage.layout import DatasetLayout
from storage.manifest import merge_records, read_manifest
from storage.stages import write_stage
from storage.video import FramePolicy, discover
from tests.conftest import ROOT, VENV_BIN
from tests.storage.videos import write_mp4


def _good_clip(tmp_path: Path, size: tuple[int, int] = (64, 48)) -> tuple[DatasetLayout, Path]:
    layout = DatasetLayout(tmp_path / "data", "d")
    (tmp_path / "inputs" / "good").mkdir(parents=True)
    video = write_mp4(tmp_path / "inputs" / "good" / "cam.mp4", n=6, width=64, height=48)
    (source,) = discover(video)
    record = ingest_clip(layout, source, "cam", IngestConfig(policy=FramePolicy(size=size)))
    merge_records(layout, [record])
    assert record.status == "ok"
    return layout, video


def _state(layout: DatasetLayout) -> dict[str, bytes]:
    return {str(p.relative_to(layout.base)): p.read_bytes() for p in layout.base.rglob("*") if p.is_file()
            and ".locks" not in p.parts}


@pytest.mark.parametrize("typo", ["inputs/good/cam", "inputs/goood"])
def test_a_missing_source_is_a_wrong_request_that_touches_nothing(tmp_path, capsys, typo):
    layout, _ = _good_clip(tmp_path)
    before = _state(layout)
    assert main(["--data-root", str(layout.root), "ingest", str(tmp_path / typo), "--dataset", "d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: ingest source {str(tmp_path / typo)!r} does not exist (nothing was written)"]
    assert _state(layout) == before
    (record,) = read_manifest(layout)
    assert record.clip_id == "cam" and record.status == "ok" and record.source_sha256


@pytest.mark.usefixtures("prefect_server")
def test_a_folder_with_nothing_to_ingest_is_a_wrong_request_too(tmp_path, capsys):
    layout, _ = _good_clip(tmp_path)
    empty = tmp_path / "inputs" / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no video here")
    before = _state(layout)
    assert main(["--data-root", str(layout.root), "ingest", str(empty), "--dataset", "d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: nothing to ingest: ") and str(empty) in err[-1]
    assert _state(layout) == before and [r.clip_id for r in read_manifest(layout)] == ["cam"]


def _file_size_limit(limit: int):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.usefixtures("prefect_server")
def test_a_full_disk_fails_the_command_naming_the_path_and_the_good_clip_stays(tmp_path):
    layout, video = _good_clip(tmp_path)
    before = _state(layout)
    result = subprocess.run([str(VENV_BIN / "vid2vid"), "--data-root", str(layout.root), "ingest", str(video),
                             "--dataset", "d", "--size", "32x24"], cwd=ROOT, env=os.environ.copy(),
                            capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(4096))
    assert result.returncode == 1, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: ingest of {video} as clip 'cam' failed on {layout.stage_dir('rgb')}"), line
    assert "[EFBIG]" in line and "nothing was quarantined" in line and "the existing clip 'cam' is unchanged" in line
    assert "0 clip(s) ingested and kept" in line
    assert _state(layout) == before  # same shard, same manifest, no quarantine record
    (record,) = read_manifest(layout)
    assert (record.status, record.n_frames, record.width, record.height) == ("ok", 6, 64, 48) and record.source_sha256


def test_a_reingest_at_another_size_drops_the_clips_stale_stage_shards(tmp_path, capsys):
    layout, video = _good_clip(tmp_path)
    write_stage(layout, "flow", "cam", backend="test", config={}, code_version="t",
                upstream=[layout.shard_path("rgb", "cam")],
                frames=lambda: ({"payload": np.zeros((2, 48, 64), np.float32), "occlusion": np.zeros((48, 64), np.uint8)}
                                for _ in range(6)))
    assert layout.shard_path("flow", "cam").is_file()
    (source,) = discover(video)
    record = ingest_clip(layout, source, "cam", IngestConfig(policy=FramePolicy(size=(32, 24))))  # no --replace
    merge_records(layout, [record])
    assert (record.status, record.width, record.height) == ("ok", 32, 24)
    assert not layout.shard_path("flow", "cam").exists()
    assert main(["--data-root", str(layout.root), "info", "--dataset", "d"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "cam" in line)
    assert "32x24" in row and "yes" in row and row.count("│ -") >= 1  # rgb yes, flow -
    again = ingest_clip(layout, source, "cam", IngestConfig(policy=FramePolicy(size=(32, 24))))
    assert again.status == "ok"  # the same size again: the shard is current, nothing to drop
