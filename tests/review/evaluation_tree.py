"""An evaluation folder as the evaluate flow leaves it (comparison.json + H.264 mp4s per run and clip),
encoded with the project's real video writer. Small, so the browser tests stay fast; the real flow's
output is exercised by the rebuild and evaluate tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from storage.video import encode


def _frames(seed: int, frames: int, width: int, height: int) -> list[np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width]
    out = []
    for t in range(frames):
        r = (xs * 4 + t * 6 + seed * 40) % 256
        g = (ys * 5 + t * 3) % 256
        b = np.full_like(xs, (seed * 70) % 256)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return out


def make_evaluation(runs_root: Path, dataset: str, runs: list[str], clips: list[str], frames: int = 24,
                    size: tuple[int, int] = (64, 48), fps: float = 12.0) -> Path:
    """Write ``<runs_root>/evaluations/<dataset>/`` with one synthesized and one side-by-side video per run and
    clip; returns the folder."""
    width, height = size
    out = Path(runs_root) / "evaluations" / dataset
    evaluations, table = [], []
    for index, run in enumerate(runs):
        entries = []
        for c, clip in enumerate(clips):
            synthesized = _frames(index * 3 + c, frames, width, height)
            real = _frames(9 + c, frames, width, height)
            video = encode(out / run / f"{clip}.mp4", synthesized, fps)
            side = encode(out / run / f"{clip}.side_by_side.mp4",
                          [np.concatenate([r, s, r], axis=1) for r, s in zip(real, synthesized)], fps)
            entries.append({"clip_id": clip, "video": str(video), "side_by_side": str(side), "frames": frames,
                            "seconds": 0.1, "frames_per_second": 10.0})
        values = {"warp_error": 0.01 * (index + 1), "fid_i3d": "not computed: weights missing (file rgb_imagenet.pt)"}
        evaluations.append({"run": run, "model_path": f"/models/{run}.pt", "config": "tiny",
                            "variant": "vid2vid" if index == 0 else "vid2vid without flow warping",
                            "clips": entries, "values": values, "details": {}})
        table.append({"run": run, "variant": evaluations[-1]["variant"], "warp_error": f"{values['warp_error']:.4f}",
                      "fid_i3d": values["fid_i3d"], "clips": str(len(clips)), "config": "tiny",
                      "evaluated": "2026-11-26 00:00:00"})
    (out / "comparison.json").write_text(json.dumps({"dataset": dataset, "metrics": ["fid_i3d", "warp_error"],
                                                     "table": table, "evaluations": evaluations}))
    return out
