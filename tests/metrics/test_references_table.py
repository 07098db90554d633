"""Reference values, PSNR/SSIM, the lossless scoring copy and the reviewer's table."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics.fidelity import fidelity, psnr_per_frame, ssim_per_frame
from models.metrics.lossless import LosslessWriter, lossless_path, read_lossless
from models.metrics.report import SCORED_FROM, evaluate, scored
from models.metrics.table import REFERENCE_METHOD, ScoredRun, cell, comparison_rows, notes


def test_psnr_and_ssim_against_hand_computed_values():
    real = np.full((2, 16, 16, 3), 100, np.uint8)
    fake = real.copy()
    fake[0] += 10  # MSE 100 -> PSNR 10 log10(255^2 / 100) = 28.13 dB
    psnr = psnr_per_frame(fake, real)
    assert psnr[0] == pytest.approx(10 * np.log10(255 ** 2 / 100)) and psnr[1] == 100.0  # identical: capped
    ssim = ssim_per_frame(fake, real)
    # constant frames: only the luminance term, (2*110*100 + C1) / (110^2 + 100^2 + C1) with C1 = (0.01*255)^2
    c1 = (0.01 * 255) ** 2
    assert ssim[0] == pytest.approx((2 * 110 * 100 + c1) / (110 ** 2 + 100 ** 2 + c1)) and ssim[1] == pytest.approx(1.0)
    noise = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    assert ssim_per_frame(noise, real[:1])[0] < 0.1 < fidelity(real, real).ssim
    with pytest.raises(ValueError):
        psnr_per_frame(real[:1], real)


def test_lossless_copy_round_trips_exactly_and_leaves_nothing_on_error(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (4, 33, 47, 3), dtype=np.uint8)  # odd sizes too
    path = lossless_path(tmp_path / "clip.mp4")
    assert path.name == "clip.lossless.mkv"
    with LosslessWriter(path, 17.0) as writer:
        for frame in frames:
            writer.write(frame)
    np.testing.assert_array_equal(np.stack(list(read_lossless(path))), frames)
    broken = tmp_path / "broken.lossless.mkv"
    with pytest.raises(ValueError):
        with LosslessWriter(broken, 17.0) as writer:
            writer.write(frames[0])
            writer.write(frames[0].astype(np.float32))
    assert list(tmp_path.iterdir()) == [path]


def test_report_gives_real_warp_error_and_fidelity_references():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    flows = np.zeros((3, 16, 16, 2))
    flicker = real.copy()
    flicker[1::2] = 255 - flicker[1::2]
    report = evaluate(["warp_error", "psnr", "ssim"], None, warp_clips=[(flicker, flows, None, real)],
                      pairs=[(real, real), (flicker, real)])
    expected_real = float(np.mean([((real[t + 1] / 255.0 - real[t] / 255.0) ** 2).sum(-1).mean() for t in range(3)]))
    assert report.references["warp_error"] == pytest.approx(expected_real)
    assert report.values["warp_error"] > report.references["warp_error"]
    assert report.details["psnr"]["n_clips"] == 2 and report.details["psnr"]["per_clip"][0] == 100.0
    assert scored(real).shape[0] == 4 - SCORED_FROM


def _run(variant, fid, n_fake=30):
    details = {"fid_inception": {"n_fake": n_fake, "n_real": n_fake, "n_reference": 60, "feature_dim": 2048,
                                 "weights_file": "w/fid.pth", "weights_sha256": "ab" * 32, "weights_origin": "origin X"}}
    values = {"fid_inception": fid, "warp_error": 0.01, "psnr": 21.5,
              "fid_i3d": "not computed: weights missing (file w/rgb_imagenet.pt)"}
    return ScoredRun(variant, variant, values, details, 2, "demo")


def test_table_is_table1_layout_with_short_cells_and_long_notes():
    runs = [_run("vid2vid", 80.0), _run("frame-by-frame baseline", 95.25)]
    references = {"fid_inception": 40.0, "warp_error": 0.005,
                  "fid_i3d": "not computed: weights missing (file w/rgb_imagenet.pt)"}
    metrics = ["fid_i3d", "fid_inception", "warp_error", "psnr"]
    rows = comparison_rows(runs, metrics, references, "now")
    assert [r["method"] for r in rows] == ["frame-by-frame baseline", "vid2vid", REFERENCE_METHOD]
    assert list(rows[0])[:5] == ["method", *metrics]
    assert rows[0]["fid_i3d"] == "n/a — weights missing" and rows[0]["fid_inception"] == "95.25 ⚠"
    assert rows[2]["fid_inception"] == "40.00" and rows[2]["warp_error"] == "0.00500" and rows[2]["psnr"] == "—"
    text = "\n".join(notes(runs, metrics, references))
    assert "w/rgb_imagenet.pt" in text and "ab" * 32 in text and "origin X" in text
    assert "fewer samples than its 2048 feature dimensions" in text and "30 synthesized vs 30 real" in text
    assert cell("fid_inception", 12.0, {"n_fake": 4000, "n_real": 4000, "feature_dim": 2048}) == "12.00"
    assert cell("fid_inception", "12.3456 (unverified weights)") == "12.35 (unverified)"


def test_values_from_unverified_weights_are_labelled_cells_not_na_reasons():
    runs = [_run("vid2vid", "557.8202 (unverified weights)"), _run("frame-by-frame baseline", "443.8928 (unverified weights)")]
    metrics = ["fid_i3d", "fid_inception"]
    rows = comparison_rows(runs, metrics, {}, "now")
    assert [r["fid_inception"] for r in rows[:2]] == ["443.89 (unverified) ⚠", "557.82 (unverified) ⚠"]
    reasons = [line for line in notes(runs, metrics, {}) if line.startswith("n/a")]
    assert reasons == ["n/a `fid_i3d`: not computed: weights missing (file w/rgb_imagenet.pt)"]
