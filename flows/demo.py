"""`make demo`: the full rebuild on the embedded default data, plus the real face clip, then where to look."""

from __future__ import annotations

import os
import time

from flows.preprocess import face_demo
from flows.rebuild import RebuildParams, rebuild_flow
from storage.locations import data_root, runs_root


def run_demo(root_override: str | None = None, runs_override: str | None = None) -> int:
    started = time.perf_counter()
    root = data_root(root_override).resolve()
    runs = runs_root(runs_override).resolve()
    street = rebuild_flow(RebuildParams(data_root=str(root), runs_root=str(runs)))
    face = face_demo(str(root), dataset="face")
    api = os.environ.get("PREFECT_API_URL")
    sketch = face.stages["sketch"]
    lines = [
        "", "=== vid2vid demo done in %.0f s ===" % (time.perf_counter() - started),
        f"street (synthetic): {street.clips_ok} clips under {root / 'street'}; training {street.train_status}",
        f"  model:        {street.model_path}",
        f"  run folder:   {street.run_dir}  (TensorBoard: .venv/bin/tensorboard --logdir {street.run_dir}/tensorboard)",
        f"  evaluation:   {street.evaluation_json}",
        "  " + ", ".join(f"{k}: {v}" for k, v in (street.evaluation[0] if street.evaluation else {}).items()
                         if k.startswith(("fid", "warp"))),
        f"face (real clip, mediapipe sketches): {sketch.frames} frames, {sketch.empty_frames} without a face, "
        f"under {root / 'face'}",
        "artifacts: " + ", ".join(street.artifact_keys + [face.artifact_key]),
        f"inspect:    .venv/bin/vid2vid --data-root {root} info --dataset street",
    ]
    if api:
        lines.append(f"Prefect UI: {api.removesuffix('/api')}  (Artifacts page, or the flow run 'full-rebuild')")
    else:
        lines.append("Prefect UI: `make ui`, then open http://127.0.0.1:4200 (runs were recorded in ./.prefect)")
    print("\n".join(lines))
    return 0
