"""`vid2vid synthesize`: one clip of a dataset through a trained model into an mp4, as a Prefect flow."""

from __future__ import annotations

from prefect import flow

from flows.forms import SynthesizeParams
from flows.naming import dataset_tag, run_name
from models.synthesis import parse_remap
from storage.layout import check_name
from storage.outputs import check_synthesis_outputs
from storage.registry import resolve_model_path
from storage.target import resolve_target
from tasks.synthesize import SynthesizedClip, synthesize_clip_task


@flow(name="synthesize", log_prints=True, flow_run_name=run_name(
    "synthesize", SynthesizeParams, lambda p: f"{p.dataset} {p.clip}", dataset_tag))
def synthesize_flow(params: SynthesizeParams) -> SynthesizedClip:
    target = resolve_target(params.dataset, params.data_root, params.runs_root)
    layout = target.layout
    check_name(params.clip, "clip")
    checkpoint = resolve_model_path(params.checkpoint, target.runs)  # a deployment's reference
    out, review, frames_dir = check_synthesis_outputs(params.out, params.frames_dir, params.side_by_side, layout.root,
                                                      [checkpoint, params.single_checkpoint])
    return synthesize_clip_task(checkpoint, layout, params.clip, str(out),
                                None if review is None else str(review), parse_remap(params.remap), params.seed,
                                params.first_frame, params.single_checkpoint,
                                None if frames_dir is None else str(frames_dir))
