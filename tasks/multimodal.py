"""Glue of the multimodal post-training step: fit the per-class feature mixtures on the training clips
and store them inside the model file, where synthesis and evaluation load them."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from models.vid2vid.checkpoint import load_checkpoint, model_config, multimodal_parts, save_checkpoint
from models.vid2vid.multimodal import fit_class_mixtures
from storage.dataset import clip_batches, require_label_spaces, require_stage_shards
from storage.layout import DatasetLayout
from storage.manifest import read_manifest


class FittedMixtures(BaseModel):
    model_path: str
    clips: list[str]
    classes: list[int]
    components: int


@task(name="fit-feature-mixtures", task_run_name="fit feature mixtures -> {model_path}", cache_policy=NO_CACHE)
def fit_mixtures_task(model_path: str, layout: DatasetLayout, split: str = "train",
                      max_frames_per_clip: int | None = 60, seed: int = 0) -> FittedMixtures:
    state = load_checkpoint(model_path)  # read once: the encoder, the config, and the state the mixtures join
    config = model_config(state, model_path)
    encoder, _ = multimodal_parts(state, model_path)
    if encoder is None:
        raise ValueError(f"{model_path} has no feature encoder: its config does not enable multimodal synthesis")
    clips = sorted(r.clip_id for r in read_manifest(layout) if r.status == "ok" and r.split == split)
    labels = config.input.labels
    stages = list(dict.fromkeys([*([labels.stage] if labels else []), config.multimodal.instance_stage]))
    require_stage_shards(layout, ["rgb", *stages], split, "fitting the feature mixtures reads", clips)
    require_label_spaces(layout, config.input.label_spaces, split, f"model {model_path} reads", clips)
    size = (config.input.width, config.input.height)
    batches = (b for clip in clips for b in clip_batches(layout, clip, stages, size, limit=max_frames_per_clip))
    gmm = fit_class_mixtures(encoder, config, batches, seed)
    save_checkpoint(model_path, state, gmm=gmm)  # atomic: the model file gains its mixtures or stays as it was
    return FittedMixtures(model_path=model_path, clips=clips, classes=sorted(gmm.params),
                          components=config.multimodal.n_components)
