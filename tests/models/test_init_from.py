"""Starting a run from a model file's weights (``--init-from``): what the driver accepts and refuses, and what
the trainer takes from the file (weights only: fresh optimisers, step 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.vid2vid import Vid2VidTrainer, save_checkpoint
from models.vid2vid.checkpoint import (IMPORTED_FORMAT, CheckpointError, load_checkpoint, validate_checkpoint,
                                       validate_init_from)
from models.vid2vid.generator import Vid2VidGenerator

from .helpers_vid2vid import moving_clip, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny trainer checkpoint after one step (so its weights and optimiser state are not the initial ones)."""
    trainer = Vid2VidTrainer(tiny_config(train={"seed": 5}))
    trainer.train_step(moving_clip(T=4))
    return save_checkpoint(tmp_path_factory.mktemp("init") / "model.pt", trainer)


def _imported(path: Path, config, *, discriminators: bool | None) -> Path:
    """A file as import-official writes it; ``discriminators=None``: one written before D was imported (no key)."""
    state = {"format": IMPORTED_FORMAT, "config": config.to_dict(), "epoch": 0, "step": 0,
             "generator": Vid2VidGenerator(config).state_dict(), "single_frame": None, "source": {"files": {}}}
    if discriminators is not None:
        state["discriminators"] = Vid2VidTrainer(config).D.state_dict() if discriminators else None
    return save_checkpoint(path, state)


def test_a_trained_model_starts_a_new_run_with_its_weights_and_fresh_optimisers(trained) -> None:
    path, parts, notes = validate_init_from(trained, tiny_config().to_dict())
    assert path == trained.resolve() and parts == ["generator", "discriminators"] and notes == []
    state = load_checkpoint(path)
    trainer = Vid2VidTrainer(tiny_config())  # seed 0: other initial weights than the file's
    before = trainer.G.generator.state_dict()["scales.0.bg_out.1.weight"].clone()
    assert trainer.load_weights(state) == ["generator", "discriminators"]
    for key, value in trainer.G.generator.state_dict().items():
        assert torch.equal(value, state["generator"][key]), key
    for key, value in trainer.D.state_dict().items():
        assert torch.equal(value, state["discriminators"][key]), key
    assert not torch.equal(before, trainer.G.generator.state_dict()["scales.0.bg_out.1.weight"])
    assert trainer.step == 0 and trainer.epoch == 0 and not trainer.opt_G.state and not trainer.opt_D.state
    assert state["step"] == 1 and state["optimizer_G"]["state"]  # the file's own progress is not carried over


def test_an_imported_model_with_or_without_discriminators(tmp_path) -> None:
    config = tiny_config()
    with_d = _imported(tmp_path / "with.pt", config, discriminators=True)
    old = _imported(tmp_path / "old.pt", config, discriminators=None)
    assert validate_init_from(with_d, config.to_dict())[1] == ["generator", "discriminators"]
    assert validate_init_from(old, config.to_dict())[1] == ["generator"]
    trainer = Vid2VidTrainer(config)
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    assert trainer.load_weights(load_checkpoint(old)) == ["generator"]
    assert all(torch.equal(d_before[k], v) for k, v in trainer.D.state_dict().items())  # D stays fresh
    # an imported file has no optimiser state or step: it cannot be continued, and says how to use it
    with pytest.raises(CheckpointError, match="imported model .* --init-from"):
        validate_checkpoint(with_d, config.to_dict())


def test_notes_name_what_computes_differently_without_changing_shapes(tmp_path) -> None:
    official = tiny_config(generator={"composition": "official"}, discriminator={"video_flow_scale": 0.05})
    path = _imported(tmp_path / "imported.pt", official, discriminators=True)
    _, _, notes = validate_init_from(path, tiny_config().to_dict())
    assert any("generator.composition: file 'official', run 'paper'" in n for n in notes)
    assert any("discriminator.video_flow_scale" in n for n in notes)


@pytest.mark.parametrize("run, needles", [
    ({"generator": {"ngf": 32}}, ["generator shapes", "scales.0.src_down.1.weight: file (16, 60, 7, 7), config (32, 60, 7, 7)"]),
    ({"generator": {"n_scales": 1}}, ["generator keys the config lacks", "scales.1."]),
    ({"discriminator": {"scale_widths": "official"}}, ["discriminators shapes", "image.nets.1.layers.0.0.weight: file (8, 23, 4, 4), config (16, 23, 4, 4)"]),
    ({"discriminator": {"n_scales_temporal": 3}}, ["discriminators keys missing from the file", "video.scales.2."]),
])
def test_an_architecture_mismatch_names_the_file_and_the_first_differing_keys(trained, run, needles) -> None:
    with pytest.raises(CheckpointError) as info:
        validate_init_from(trained, tiny_config(**run).to_dict())
    message = str(info.value)
    assert str(trained.resolve()) in message and "does not fit this run's model config 'tiny'" in message
    for needle in needles:
        assert needle in message, message


def test_files_that_are_not_vid2vid_models_are_refused(tmp_path, trained) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        validate_init_from(tmp_path / "nope.pt", tiny_config().to_dict())
    torch.save({"model_down_seg.1.weight": torch.zeros(1)}, tmp_path / "latest_net_G0.pth")  # an official file
    with pytest.raises(CheckpointError, match="is not a vid2vid checkpoint"):
        validate_init_from(tmp_path / "latest_net_G0.pth", tiny_config().to_dict())
    state = load_checkpoint(trained)
    torch.save({**state, "format": "mask-predictor/1"}, tmp_path / "predictor.pt")
    with pytest.raises(CheckpointError, match="format 'mask-predictor/1'"):
        validate_init_from(tmp_path / "predictor.pt", tiny_config().to_dict())
    torch.save({**state, "encoder": state["generator"]}, tmp_path / "multimodal.pt")
    with pytest.raises(CheckpointError, match="encoder weights .* this run's config has none"):
        validate_init_from(tmp_path / "multimodal.pt", tiny_config().to_dict())
