"""The face demo: the real carphone clip ingested and sketched (mediapipe face mesh), one parent run whose
artifact shows the frames beside their sketches."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.naming import templated
from flows.preprocess import PreprocessParams, PreprocessSummary, preprocess_flow
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout
from storage.sample_videos import carphone_path
from tasks.artifacts import artifact_key, data_uri, publish_markdown


@flow(name="face-demo", log_prints=True, flow_run_name=templated("face demo {dataset}"))
def face_demo(root: str | None = None, dataset: str = "face", workers: int = 1) -> PreprocessSummary:
    """Ingest the real carphone clip through the ingest flow and draw its face sketches with mediapipe; one
    parent run in the UI, whose artifact shows the clip beside its sketches."""
    from flows.ingest import IngestParams, ingest_flow

    ingested = ingest_flow(IngestParams(src=str(carphone_path()), dataset=dataset, data_root=root))  # fails if it cannot
    summary = preprocess_flow(PreprocessParams(dataset=dataset, data_root=root, stages=["sketch"], workers=workers))
    layout = DatasetLayout.open(dataset, root)
    clip = ingested.records[0].clip_id
    from models.training.review import png_bytes

    picture = png_bytes(sketch_grid(layout, clip))
    sketch = summary.stages["sketch"]
    publish_markdown(artifact_key("face-demo", dataset), "\n".join([
        f"### Face sketches of `{clip}` (real clip, mediapipe face mesh)", "",
        f"![frames and sketches]({data_uri(picture)})", "",
        f"{sketch.frames} frames sketched, {sketch.empty_frames} without a face; shards under `{layout.base}`. "
        f"Left: the frame, right: the sketch the generator is conditioned on."]), "face demo: frames beside their sketches")
    return summary


def sketch_grid(layout: DatasetLayout, clip_id: str, n_frames: int = 4) -> Any:
    """Rows of (frame | sketch) for ``n_frames`` frames spread over the clip, RGB uint8."""
    import numpy as np

    from models.training.review import frame_grid  # torch comes with it: only when the picture is drawn

    frames = list(iter_clip_frames(layout, clip_id, ("rgb", "sketch")))
    picks = frames[:: max(1, len(frames) // n_frames)][:n_frames]
    rows = []
    for frame in picks:
        sketch = frame["sketch"]
        sketch = np.repeat(sketch[..., None], 3, axis=2) if sketch.ndim == 2 else sketch[..., :3]
        rows.append(np.concatenate([frame["rgb"], sketch.astype(np.uint8)], axis=1))
    return frame_grid([(None, rows)], scale=1)
