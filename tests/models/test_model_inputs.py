"""Generator inputs are declared data: presets, validation, the source encoding and old checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from models.preprocess.pose import render_pose
from models.vid2vid.batch import encode_source, instance_boundaries, validate_batch
from models.vid2vid.checkpoint import load_generator, model_config, save_checkpoint
from models.vid2vid.config import CONFIG_DIR, ModelConfig, Rendering, load_model_config
from models.vid2vid.inference import synthesize
from models.vid2vid.trainer import Vid2VidTrainer

from .helpers_vid2vid import moving_clip, tiny_config

STREET_SOURCES = [{"name": "labels", "stage": "semantic", "encoding": "one_hot", "num_classes": 19},
                  {"name": "instance", "stage": "instance", "encoding": "instance_edges"}]


def test_every_preset_declares_its_inputs_and_the_pose_preset_matches_the_pose_stage() -> None:
    presets = {p.stem: load_model_config(p.stem) for p in CONFIG_DIR.glob("*.yaml")}
    assert {"street", "face", "pose", "tiny", "tiny_face", "tiny_pose", "tiny_multimodal"} <= set(presets)
    for name, config in presets.items():
        assert config.input.sources and ModelConfig.model_validate(config.to_dict()) == config, name
    assert presets["street"].input.source_channels == 20 and presets["street"].data_stages == ("semantic", "instance")
    assert presets["face"].data_stages == ("sketch",)
    rendered = render_pose((16, 16), [])  # what the pose stage writes per frame
    for name in ("pose", "tiny_pose"):
        (spec,) = presets[name].input.sources
        assert isinstance(spec, Rendering) and spec.stage == "pose" and spec.channels == rendered.shape[-1] == 3
    assert presets["tiny_multimodal"].data_stages == ("semantic", "instance") and presets["tiny_multimodal"].multimodal.enabled


@pytest.mark.parametrize("sources, message", [
    ([], "empty"),
    ([{**STREET_SOURCES[0], "channels": 18}], "num_classes=19 channels, not 18"),
    ([STREET_SOURCES[0], {**STREET_SOURCES[0], "name": "again"}], "at most one one_hot"),
    ([STREET_SOURCES[0], {**STREET_SOURCES[1], "name": "labels"}], "unique"),
    ([{"name": "motion", "stage": "flow", "encoding": "rendering"}], "flow stage"),
    ([STREET_SOURCES[0], {"name": "picture", "stage": "semantic", "encoding": "rendering"}], "both as ids and as a rendering"),
    ([{"name": "sketch", "stage": "sketch", "encoding": "edges"}], "does not match any of the expected tags"),
    ([{"name": "sketch", "stage": "sketch", "encoding": "rendering", "extra_channels": 3}], "Extra inputs"),
])
def test_bad_input_declarations_are_refused_by_name(sources, message) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelConfig.model_validate({"input": {"width": 64, "height": 32, "sources": sources},
                                    "generator": {"use_fg_prior": False}})


def test_fg_prior_needs_a_label_input() -> None:
    with pytest.raises(ValidationError, match="needs a one_hot label input"):
        tiny_config(input={"width": 64, "height": 32,
                           "sources": [{"name": "sketch", "stage": "sketch", "encoding": "rendering"}]})


def test_source_is_the_declared_inputs_in_order_and_batches_are_checked_against_them() -> None:
    config = tiny_config(input={"width": 64, "height": 32, "sources": [
        *STREET_SOURCES, {"name": "edges", "stage": "sketch", "encoding": "rendering", "channels": 3}]})
    assert config.input.source_channels == 23 and config.data_stages == ("semantic", "instance", "sketch")
    clip = moving_clip(T=4)
    sketch = torch.rand(1, 4, 3, 32, 64) * 2 - 1
    source = encode_source(config, {**clip, "sketch": sketch})
    assert source.shape == (1, 4, 23, 32, 64)
    assert torch.equal(source[0, :, 19], instance_boundaries(clip["instance"][0])[:, 0])
    assert torch.equal(source[:, :, 20:], sketch)  # renderings enter as they are, after the label channels
    assert torch.equal(source[0, 0, :19].argmax(0)[clip["semantic"][0, 0] < 19], clip["semantic"][0, 0][clip["semantic"][0, 0] < 19])
    validate_batch({**clip, "sketch": sketch}, config)
    with pytest.raises(ValueError, match="batch needs 'sketch'"):
        validate_batch(clip, config)
    with pytest.raises(ValueError, match=r"batch\['sketch'\] must have shape"):
        validate_batch({**clip, "sketch": sketch[:, :, :2]}, config)
    with pytest.raises(ValueError, match="integer ids"):
        validate_batch({**clip, "sketch": sketch, "semantic": clip["semantic"].float()}, config)


def test_a_rendering_only_model_trains_and_synthesizes_from_its_declared_stage(tmp_path) -> None:
    config = tiny_config(input={"width": 64, "height": 32, "sources": [
        {"name": "pose", "stage": "pose", "encoding": "rendering"}]}, generator={"use_fg_prior": False, "n_scales": 1},
        discriminator={"use_video_discriminator": False})
    clip = moving_clip(T=4)
    pose = clip["image"].flip(-1)
    trainer = Vid2VidTrainer(config)
    assert np.isfinite(trainer.train_step({"image": clip["image"], "pose": pose, "flow": clip["flow"]})["G_total"])
    path = save_checkpoint(tmp_path / "pose.pt", trainer)
    generator, loaded = load_generator(path)
    assert loaded.input == config.input  # the checkpoint carries the declared inputs
    out = list(synthesize(generator, [{"pose": pose[0, t]} for t in range(4)]))
    assert len(out) == 4 and out[0]["image"].shape == (1, 3, 32, 64)
    with pytest.raises(ValueError, match="needs frames of the 'pose' stage"):
        list(synthesize(generator, [{"semantic": clip["semantic"][0, 0]}]))


def test_a_checkpoint_from_before_declared_inputs_is_refused_by_name(tmp_path) -> None:
    state = {"config": {"input": {"width": 64, "height": 32, "num_classes": 0, "use_instance": False,
                                  "extra_channels": 3}}}
    with pytest.raises(ValueError, match="old.pt was written before model inputs were declared"):
        model_config(state, tmp_path / "old.pt")
