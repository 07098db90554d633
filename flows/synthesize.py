"""`vid2vid synthesize`: one clip of a dataset through a trained model into an mp4, as a Prefect flow."""

from __future__ import annotations


from prefect import flow
from pydantic import Field

from flows.naming import dataset_tag, run_name
from flows.params import FlowParams
from models.synthesis import parse_remap
from storage.layout import check_name
from storage.outputs import check_synthesis_outputs
from storage.registry import resolve_model_path
from storage.target import resolve_target
from tasks.synthesize import FirstFrameChoice, SynthesizedClip, synthesize_clip_task


class SynthesizeParams(FlowParams):
    checkpoint: str = Field(description="model.pt or checkpoint.pt of a training run, or a registry reference such as "
                                        "street/demo_street@champion")
    dataset: str = Field(description="the dataset's name under the data root")
    clip: str = Field(description="the clip id whose source (labels, sketches, ...) drives the synthesis")
    out: str = Field(description="the mp4 to write")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    runs_root: str | None = Field(default=None, description="where references are looked up; default: "
                                                            "$VID2VID_RUNS_ROOT or ./runs")
    remap: str | None = Field(default=None, description='semantic manipulation, e.g. "tree=building"')
    seed: int = Field(default=0, description="feature-vector sampling seed (multimodal models)")
    first_frame: FirstFrameChoice = Field(default="zeros", description="what stands before the first frame")
    single_checkpoint: str | None = Field(default=None, description="frame-by-frame model for --first-frame single")
    side_by_side: bool = Field(default=True, description="also write OUT.side_by_side.mp4 (source | synthesized | real)")
    frames_dir: str | None = Field(default=None, description="also write every frame as a lossless PNG "
                                   "(000000.png, ...) into this folder, placed as a whole when done")


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
