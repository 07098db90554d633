"""`make demo`: the pipeline on the embedded default data, ending with where to look."""

from __future__ import annotations

import os
from pathlib import Path

from flows.ingest import IngestParams, SynthParams, ingest_flow, synth_flow
from storage.ingest import IngestConfig
from storage.layout import DatasetLayout, data_root
from storage.shards import ShardReader
from storage.video import FramePolicy, encode

DEMO_SIZE = (256, 128)


def _sample_videos(root: Path, street: DatasetLayout) -> Path:
    """Real mp4 files (H.264) made from the synthetic street, so the demo exercises the video-decoding door too."""
    folder = root / "demo_videos"
    for clip in sorted(p.stem for p in street.stage_dir("rgb").glob("*.parquet"))[:2]:
        target = folder / f"{clip}.mp4"
        if not target.exists():
            frames = (f["payload"] for f in ShardReader(street.shard_path("rgb", clip)).iter_frames())
            encode(target, frames, fps=17)
    return folder


def run_demo(root_override: str | None = None) -> int:
    root = data_root(root_override).resolve()
    street = synth_flow(SynthParams(dataset="street", data_root=str(root), clips=4, frames=30,
                                    width=DEMO_SIZE[0], height=DEMO_SIZE[1], seed=0))
    videos = _sample_videos(root, DatasetLayout(root, "street"))
    ingested = ingest_flow(IngestParams(src=str(videos), dataset="videos", data_root=str(root),
                                        config=IngestConfig(policy=FramePolicy(size=DEMO_SIZE))))
    api = os.environ.get("PREFECT_API_URL")
    print("\n=== vid2vid demo done ===")
    print(f"synthetic street: {street.clips_ok} clips, {street.frames} frames -> {root / 'street'}")
    print(f"ingested videos:  {ingested.clips_ok} clips, {ingested.frames} frames -> {root / 'videos'}")
    print(f"artifacts: {street.artifact_key}, {ingested.artifact_key}")
    print(f"inspect:   .venv/bin/vid2vid --data-root {root} info --dataset street")
    if api:
        print(f"Prefect UI: {api.removesuffix('/api')}")
    else:
        print("Prefect UI: runs were recorded in the embedded database; open it with "
              "`PREFECT_HOME=.prefect .venv/bin/prefect server start` and browse http://127.0.0.1:4200")
    return 0 if street.clips_ok and ingested.clips_ok else 1
