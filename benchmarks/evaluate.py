"""Evaluation figures on this machine: the demo's result, feature extraction clips/s per network, Fréchet time.

First the last `make demo`'s numbers (read from its runs folder): PSNR, SSIM, warp error and frame FID of
vid2vid and of the frame-by-frame baseline on the held-out clips, the real-data references, and each
model's training budget in steps and seconds. Then TIMING ONLY: the networks run with random-init weights
(no pretrained files are needed or read), so the features they produce are meaningless; only the speed is.
Inputs are the standard sizes from models.metrics.preprocessing.PREPROCESSING (I3D 16x224x224,
3D-ResNeXt-101 16x112x112, Inception 299x299).

    .venv/bin/python benchmarks/evaluate.py [--runs-root runs] [--networks i3d resnext101 inception] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.metrics.features import random_feature_network  # noqa: E402
from models.metrics.frechet import frechet_distance  # noqa: E402
from models.metrics.preprocessing import PREPROCESSING  # noqa: E402
from models.metrics.warp_error import warping_error  # noqa: E402


CPU_SECONDS: dict[str, float] = {}  # last measured process CPU seconds per call, by label


def _time(fn: Callable[[], object], repeats: int, label: str = "") -> float:
    """Median wall seconds of ``repeats`` calls after one warm-up call.

    Process CPU seconds are recorded too (``CPU_SECONDS[label]``): on a shared machine wall time
    swings with other load, CPU time much less (CPU s / threads ~ wall s on an idle machine).
    """
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_SECONDS[label] = float(np.median(cpu))
    return float(np.median(times))


def bench_features(name: str, batch_size: int, repeats: int, source_hw: tuple[int, int]) -> dict[str, float]:
    extractor = random_feature_network(name)
    prep = PREPROCESSING[name]
    shape = (batch_size, 3, prep.clip_len, prep.size, prep.size) if prep.is_video else (batch_size, 3, prep.size, prep.size)
    x = torch.randn(shape)
    network_s = _time(lambda: extractor(x), repeats, f"{name}-network")
    # End to end from uint8 frames at the synthesis resolution: per-frame resize/crop/normalise + network.
    frames = prep.clip_len * batch_size
    video = np.random.default_rng(0).integers(0, 256, (frames, *source_hw, 3), dtype=np.uint8)
    e2e_s = _time(lambda: extractor.video_features(video, batch_size=batch_size), repeats)
    return {"network_clips_per_s": batch_size / network_s, "e2e_clips_per_s": batch_size / e2e_s,
            "e2e_frames_per_s": frames / e2e_s, "cpu_s_per_clip": CPU_SECONDS[f"{name}-network"] / batch_size}


def bench_frechet(dim: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(dim + 100, dim)), rng.normal(size=(dim + 100, dim))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return _time(lambda: frechet_distance(a.mean(0), s1, b.mean(0), s2), repeats)


def bench_warp(repeats: int, hw: tuple[int, int] = (256, 512), frames: int = 30) -> float:
    clip = np.random.default_rng(0).integers(0, 256, (frames, *hw, 3), dtype=np.uint8)
    flow = np.random.default_rng(1).normal(size=(frames - 1, *hw, 2)).astype(np.float32)
    return frames / _time(lambda: warping_error(clip, flow), repeats)


_RENDER = """
import json, resource, sys, time
from pathlib import Path
from storage.layout import DatasetLayout
from tasks.synthesize import render_clip
root, clip, model = sys.argv[1:4]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = render_clip(model, DatasetLayout(Path(root), "bench"), clip, Path(root) / f"{clip}.mp4",
                     side_by_side=Path(root) / f"{clip}.sbs.mp4")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": result.frames, "fps": result.frames_per_second, "peak_mb": peak / 1024,
                  "growth_mb": (peak - before) / 1024}))
"""


def bench_synthesis(lengths: tuple[int, ...] = (30, 600), size: tuple[int, int] = (256, 128)) -> str | None:
    """Synthesis frames/s and peak memory per clip length, each in a fresh process (peak RSS is per process).

    The model is the tiny preset widened to ``size`` with untrained weights: speed and memory only.
    """
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    from models.vid2vid import Vid2VidTrainer, load_model_config, save_checkpoint
    from storage.layout import DatasetLayout
    from storage.manifest import write_manifest
    from storage.synthetic import write_synthetic_clip

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        layout = DatasetLayout(Path(tmp), "bench")
        config = load_model_config("tiny", input={"width": size[0], "height": size[1]})
        model = save_checkpoint(Path(tmp) / "model.pt", Vid2VidTrainer(config))
        write_manifest(layout, [write_synthetic_clip(layout, f"len{n}", n, size[0], size[1], n) for n in lengths])
        repo = Path(__file__).resolve().parents[1]
        for n in lengths:
            done = subprocess.run([sys.executable, "-c", _RENDER, tmp, f"len{n}", str(model)], capture_output=True,
                                  text=True, cwd=repo, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            lines.append(f"synthesis   {n:4d}-frame {size[0]}x{size[1]} clip (tiny preset, mp4 + side-by-side): "
                         f"{r['fps']:.1f} frames/s, peak RSS {r['peak_mb']:.0f} MB "
                         f"(+{r['growth_mb']:.0f} MB during synthesis)")
    return "\n".join(lines)


def demo_figures(runs_root: Path) -> list[str]:
    """The last demo's comparison (``<runs_root>/evaluations/street/comparison.json``) and training budgets."""
    import json

    path = runs_root / "evaluations" / "street" / "comparison.json"
    if not path.is_file():
        return [f"demo        no demo evaluation at {path}: run `make demo` first"]
    saved = json.loads(path.read_text())
    lines = [f"demo        {path} ({len(saved['evaluations'])} model(s) on the held-out clips):"]
    shown = ("psnr", "ssim", "warp_error", "fid_inception")
    for evaluation in saved["evaluations"]:
        summary = Path(evaluation["model_path"]).parent / "summary.json"
        budget = json.loads(summary.read_text()) if summary.is_file() else {}
        figures = ", ".join(f"{m} {v:.4g}" if isinstance(v, float) else f"{m} n/a"
                            for m, v in evaluation["values"].items() if m in shown)
        lines.append(f"  {evaluation['variant']:26s} {figures}; trained {budget.get('steps', '?')} steps in "
                     f"{budget.get('seconds', float('nan')):.0f} s ({budget.get('job', {}).get('workers', '?')} workers)")
    references = saved["evaluations"][0].get("references", {}) if saved["evaluations"] else {}
    lines.append("  real frames (reference)    " + ", ".join(
        f"{m} {v:.4g}" if isinstance(v, float) else f"{m} n/a" for m, v in references.items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["i3d", "resnext101", "inception"], choices=list(PREPROCESSING))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source-hw", type=int, nargs=2, default=(256, 512), help="frame size fed end to end")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs-root", type=Path, default=Path(os.environ.get("VID2VID_RUNS_ROOT", "runs")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("\n".join(demo_figures(args.runs_root)))
    print("== evaluation benchmark: TIMING ONLY, random-init weights, features are meaningless ==")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads on {os.cpu_count()} cores, CPU only; "
          f"load average at start {load:.1f} (wall-clock figures are only comparable at similar load)")
    for name in args.networks:
        prep = PREPROCESSING[name]
        size = f"{prep.clip_len}x{prep.size}x{prep.size}" if prep.is_video else f"{prep.size}x{prep.size}"
        r = bench_features(name, args.batch_size, args.repeats, tuple(args.source_hw))
        print(f"{name:11s} input {size:12s} batch {args.batch_size}: network {r['network_clips_per_s']:.3f} clips/s, "
              f"end-to-end from {args.source_hw[0]}x{args.source_hw[1]} uint8 {r['e2e_clips_per_s']:.3f} clips/s "
              f"({r['e2e_frames_per_s']:.2f} frames/s); {r['cpu_s_per_clip']:.2f} CPU s per clip")
    for dim in (1024, 2048):
        print(f"frechet     {dim}-d covariances: {bench_frechet(dim, args.repeats):.2f} s per distance")
    print(f"warp error  {args.source_hw[0]}x{args.source_hw[1]}, 30 frames: {bench_warp(args.repeats, tuple(args.source_hw)):.1f} frames/s")
    line = bench_synthesis()
    print(line if line is not None else "synthesis   frames/s: not measured yet (hook bench_synthesis() in benchmarks/evaluate.py)")


if __name__ == "__main__":
    main()
