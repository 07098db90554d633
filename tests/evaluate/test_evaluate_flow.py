"""The evaluate flow end to end: two runs (full model and an ablation), videos, an honest comparison table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from prefect.client.orchestration import get_client

from flows.evaluate import EvaluateParams, evaluate_flow
from models.vid2vid import Vid2VidTrainer, load_model_config, save_checkpoint
from models.weights import expected_path
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip
from storage.video import VideoSource, decode


pytestmark = pytest.mark.usefixtures("prefect_server")
FRAMES = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    layout = DatasetLayout(root / "data", "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"v{k}", 100 + k, 128, 64, FRAMES, split="val")
                            for k in range(2)] + [write_synthetic_clip(layout, "t0", 200, 128, 64, FRAMES, split="train")])
    runs = root / "runs"
    for name, overrides in {"full": {}, "noflow": {"generator": {"use_flow_warping": False}}}.items():
        save_checkpoint(runs / name / "model.pt", Vid2VidTrainer(load_model_config("tiny", **overrides)))
    weights = root / "weights"
    corrupt = expected_path("inception_fid", weights)
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not the FID inception weights")
    return layout, runs, weights


def test_two_runs_give_videos_and_an_honest_table(setup):
    layout, runs, weights = setup
    result = evaluate_flow(EvaluateParams(dataset="street", runs=["full", "noflow"],
                                          metrics=["fid-frame", "warp", "psnr", "ssim"],
                                          data_root=str(layout.root), runs_root=str(runs), weights_dir=str(weights)))
    rows = {row["run"]: row for row in result.table}
    assert rows["full"]["method"] == "vid2vid" and rows["noflow"]["method"] == "vid2vid without flow warping"
    assert [row["method"] for row in result.table] == ["vid2vid without flow warping", "vid2vid",
                                                       "real frames (reference)"]
    assert list(result.table[0])[:5] == ["method", "fid_inception", "warp_error", "psnr", "ssim"]
    for row in result.table[:2]:
        assert row["fid_inception"] == "n/a — checksum mismatch"  # never a number
        assert float(row["warp_error"]) >= 0.0 and 0 < float(row["psnr"]) < 100 and float(row["ssim"]) <= 1
    assert float(result.table[2]["warp_error"]) > 0  # the real clips' own warp error
    assert any("checksum mismatch" in note and str(expected_path("inception_fid", weights)) in note
               for note in result.notes)
    for evaluation in result.evaluations:  # scored from the lossless copy, frame 0 (the real one) excluded
        for clip in evaluation.clips:
            assert clip.lossless.endswith(".lossless.mkv") and Path(clip.lossless).is_file()
        assert evaluation.details["psnr"]["n_frames"] == 2 * (FRAMES - 1)
    for evaluation in result.evaluations:
        assert [c.clip_id for c in evaluation.clips] == ["v0", "v1"]
        for clip in evaluation.clips:
            video = list(decode(VideoSource("v", clip.video)))
            review = list(decode(VideoSource("r", clip.side_by_side)))
            assert len(video) == len(review) == FRAMES  # every held-out clip at its full length
            assert video[0].shape == (32, 64, 3) and review[0].shape == (32, 192, 3)
    saved = json.loads((runs / "evaluations" / "street" / "comparison.json").read_text())
    assert saved["table"] == result.table
    from review.catalog import Catalog  # the review app reads what the flow wrote

    reviewed = Catalog(runs).evaluation("street", "latest")
    assert set(reviewed.runs) == {"full", "noflow"}
    assert reviewed.runs["noflow"].clips["v1"].side_by_side == "evaluations/street/noflow/v1.side_by_side.mp4"

    async def read():
        async with get_client() as client:
            return {a.key: a for a in await client.read_latest_artifacts() if a.key in result.artifact_keys}

    artifacts = asyncio.run(read())
    table = artifacts["evaluate-street"].data  # a markdown table: its cells wrap, so it fits the UI's pane
    header, _, first = table.splitlines()[2:5]
    assert "frame FID (Inception-v3) ↓" in header and "n/a — checksum mismatch" in first
    assert "<details>" in str(artifacts["evaluate-street"].description)  # provenance folded under the table
    assert "checksum mismatch (file" in str(artifacts["evaluate-street"].description)
    assert "data:image/png;base64," in artifacts["evaluate-street-videos"].data
    assert "data:image/gif;base64," in artifacts["evaluate-street-videos"].data
    assert "/d/street/e/latest)" in artifacts["evaluate-street-videos"].data  # links to the review app
    assert "/media/evaluations/street/full/v0.mp4)" in artifacts["evaluate-street-videos"].data
    paper = artifacts["paper-street"].data  # the paper's table: methods by role, readable headers, sources
    assert "| vid2vid |" in paper and "| real |" in paper and "PSNR (dB) ↑" in paper and "Sources:" in paper


def test_later_evaluation_shows_earlier_numbers_and_cli_prints_the_table(setup, vid2vid):
    layout, runs, weights = setup
    history = runs / "evaluations" / "street" / "history.jsonl"
    with open(history, "a") as handle:  # a run scored on other clips/frames: not comparable
        handle.write(json.dumps({"run": "elsewhere", "method": "vid2vid", "warp_error": "0.1", "data": "000000000000",
                                 "evaluated": "2020-01-01 00:00:00"}) + "\n")
    done = vid2vid("--data-root", str(layout.root), "evaluate", "--dataset", "street", "--runs", "full",
                   "--metrics", "warp", "--runs-root", str(runs), "--weights-dir", str(weights))
    assert done.returncode == 0, done.stderr
    assert "comparison.json" in done.stdout and "warp_error" in done.stdout
    assert "[evaluate street] done: 1 runs" in done.stdout  # not a terminal: plain progress lines
    saved = json.loads((runs / "evaluations" / "street" / "comparison.json").read_text())
    table = saved["table"]
    assert [row["run"] for row in table] == ["full", "—", "noflow"]  # the stale row is not mixed in
    assert table[2]["evaluated"].endswith("(earlier)")
    assert {row["data"] for row in table} == {saved["data"]} and len(saved["data"]) == 12
    assert [row["run"] for row in saved["stale"]] == ["elsewhere"]


def test_warp_error_separates_a_static_model_from_real_motion(setup):
    """The warp metric is not a constant: real frames move with the flow, a frozen video does not."""
    from models.metrics import warping_error
    from storage.clip_reader import iter_clip_frames

    layout, _, _ = setup
    frames = list(iter_clip_frames(layout, "v0", ("rgb", "flow"), (64, 32)))
    real = np.stack([f["rgb"] for f in frames])
    flows = np.stack([f["flow"] for f in frames[:-1]]).transpose(0, 2, 3, 1)
    valid = np.stack([f["occlusion"] == 0 for f in frames[:-1]])
    frozen = np.repeat(real[:1], len(real), axis=0)
    assert warping_error(real, flows, valid).clip < 0.5 * warping_error(frozen, flows, valid).clip
