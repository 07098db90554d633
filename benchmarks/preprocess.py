"""Preprocessing throughput on CPU at 512×256: frames/s per stage and backend (one core each), and the
speed-up of the preprocess flow on 2 Dask workers over 1 (goal ≥ 1.8×; DIS goal ≥ 30 frames/s per core).

Learned backends run on random stand-in weights written here (no hub is reachable): their *speed* is
real, their outputs are meaningless and are not reported. ``--quick`` uses fewer frames.
Run: .venv/bin/python benchmarks/preprocess.py [--quick] [--skip-nets] [--skip-dask]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from storage.synthetic import StreetScene  # noqa: E402

W, H = 512, 256


def street_frames(n: int, seed: int = 1) -> list[np.ndarray]:
    return [f["rgb"] for f in StreetScene(W, H, n, seed).frames()]


def rate(fn, frames: list[np.ndarray], pairs: bool = False, warmup: int = 1) -> float:
    from models.preprocess.run import run_flow, run_frames

    runner = run_flow if pairs else run_frames
    list(runner(fn, frames[: warmup + 1], batch_size=2))
    start = time.perf_counter()
    n = len(list(runner(fn, frames, batch_size=2)))
    return n / (time.perf_counter() - start)


def standin(name: str, module: torch.nn.Module, folder: Path) -> None:
    from models.weights import REGISTRY, file_sha256

    spec = REGISTRY[name]
    path = folder / spec.filename
    state = module.state_dict()
    torch.save({"state_dict": state} if spec.state_dict_key else state, path)
    REGISTRY[name] = dataclasses.replace(spec, sha256=file_sha256(path) if spec.sha256_prefix else None)


def per_stage(quick: bool, skip_nets: bool) -> list[tuple[str, str, float]]:
    from models.preprocess.flow_dis import DISFlow
    from models.preprocess.pose import MediapipePose
    from models.preprocess.sketch import MediapipeFaceSketch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames = street_frames(20 if quick else 60)
    rows = [("flow", f"dis ({preset})", rate(DISFlow(preset), frames, pairs=True)) for preset in ("fast", "medium")]
    face = _face_frames(10 if quick else 30)
    with MediapipeFaceSketch() as sketch:
        rows.append(("sketch", "mediapipe (face clip, upscaled to 512x256 area)", rate(sketch, face)))
    with MediapipePose() as pose:
        rows.append(("pose", "mediapipe (street)", rate(pose, frames[:10 if quick else 30])))
    if skip_nets:
        return rows
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.optical_flow import raft_large
    from torchvision.models.segmentation import deeplabv3_resnet50

    from models.preprocess.flow_nets import FlowNet2Flow, RAFTFlow
    from models.preprocess.flownet2 import FlowNet2
    from models.preprocess.instance import TorchvisionMaskRCNN
    from models.preprocess.semantic import TorchvisionDeepLab

    few = frames[:3]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        standin("deeplabv3_resnet50", deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                                         aux_loss=True), folder)
        rows.append(("semantic", "torchvision deeplabv3_resnet50 [stand-in weights: speed only]",
                     rate(TorchvisionDeepLab(weights_dir=folder), few)))
        standin("maskrcnn_resnet50_fpn", maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91), folder)
        rows.append(("instance", "torchvision maskrcnn_resnet50_fpn [stand-in weights: speed only]",
                     rate(TorchvisionMaskRCNN(weights_dir=folder), few)))
        standin("raft_large", raft_large(weights=None), folder)
        rows.append(("flow", "raft_large, 12 iterations [stand-in weights: speed only]",
                     rate(RAFTFlow(weights_dir=folder), few, pairs=True)))
        standin("flownet2", FlowNet2(), folder)
        rows.append(("flow", "flownet2 (plain torch) [stand-in weights: speed only]",
                     rate(FlowNet2Flow(weights_dir=folder), few, pairs=True)))
    return rows


def _face_frames(n: int) -> list[np.ndarray]:
    from flows.preprocess import carphone_path
    from storage.video import FramePolicy, VideoSource, decode

    frames = list(decode(VideoSource("carphone", carphone_path()), FramePolicy()))[:n]
    return [cv2.resize(f, (352, 288), interpolation=cv2.INTER_CUBIC) for f in frames]  # ≈ 512×256's pixel count


def dask_speedup(quick: bool) -> tuple[float, float]:
    from flows.preprocess import PreprocessParams, preprocess_flow
    from models.preprocess.registry import BackendSettings
    from storage.layout import DatasetLayout
    from storage.manifest import merge_records
    from storage.synthetic import write_synthetic_clip

    root = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    layout = DatasetLayout(root, "bench")
    clips, frames = (4, 40) if quick else (8, 60)
    merge_records(layout, [write_synthetic_clip(layout, f"c{k}", k, W, H, frames) for k in range(clips)])
    walls = []
    for workers in (1, 2):
        params = PreprocessParams(dataset="bench", data_root=str(root), stages=["flow"], workers=workers, force=True,
                                  backends={"flow": BackendSettings(backend="dis", preset="medium")})
        walls.append(preprocess_flow(params).wall_seconds)
    return walls[0], walls[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-nets", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    print(f"CPU, {os.cpu_count()} cores visible, 1 thread per measurement, {W}x{H} frames")
    for stage, backend, fps in per_stage(args.quick, args.skip_nets):
        print(f"  {stage:9s} {backend:70s} {fps:8.2f} frames/s")
    if not args.skip_dask:
        one, two = dask_speedup(args.quick)
        print(f"preprocess flow (DIS medium, synthetic street, force rebuild): 1 worker {one:.1f} s, "
              f"2 workers {two:.1f} s -> speed-up {one / two:.2f}x (goal >= 1.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
