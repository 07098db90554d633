"""A bad checkpoint is one clear line naming the file and what is wrong, never torch's raw error or its
advice to load with weights_only=False; paths are settled on the driver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models.vid2vid import Vid2VidTrainer, save_checkpoint
from models.vid2vid.checkpoint import (CheckpointError, MissingCheckpointError, load_checkpoint, load_generator,
                                       validate_checkpoint)
from tests.models.helpers_vid2vid import tiny_config


class Gadget:  # a pickled class: the kind of payload that could run code
    pass


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", Vid2VidTrainer(tiny_config()))


def _bad_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    files = {
        "truncated": (data[: len(data) // 2], "truncated or corrupt"),
        "empty": (b"", "empty (0 bytes)"),
        "garbage": (b"not a checkpoint" * 20, "truncated or corrupt"),
    }
    out = {}
    for name, (content, message) in files.items():
        (folder / f"{name}.pt").write_bytes(content)
        out[name] = (folder / f"{name}.pt", message)
    torch.save({"a": torch.zeros(2)}, folder / "foreign.pt")
    out["foreign"] = (folder / "foreign.pt", "is not a vid2vid checkpoint: it lacks ['format', 'config', 'generator']")
    torch.save({"gadget": Gadget()}, folder / "pickled.pt")
    out["pickled"] = (folder / "pickled.pt", "pickled Python objects")
    state = torch.load(good, weights_only=True)
    state["config"] = {**state["config"], "generator": "not a mapping"}
    torch.save(state, folder / "badconfig.pt")
    out["badconfig"] = (folder / "badconfig.pt", "invalid model config")
    return out


def test_corrupt_checkpoints_name_the_file_and_the_problem(tmp_path, good):
    for name, (path, message) in _bad_files(tmp_path, good).items():
        with pytest.raises(CheckpointError) as info:
            load_generator(path)
        text = str(info.value)
        assert str(path) in text and message in text, (name, text)
        assert "weights_only" not in text and "\n" not in text, (name, text)
    with pytest.raises(MissingCheckpointError, match=str(tmp_path / "nope.pt")):
        load_checkpoint(tmp_path / "nope.pt")
    generator, config = load_generator(good)
    assert config.name == tiny_config().name and not generator.training


def test_relative_resume_paths_are_resolved_on_the_driver(tmp_path, good, monkeypatch):
    monkeypatch.chdir(good.parent)
    assert validate_checkpoint("model.pt", tiny_config().to_dict()) == good.resolve()
    assert validate_checkpoint(os.path.join("..", good.parent.name, "model.pt")) == good.resolve()
    with pytest.raises(CheckpointError, match="differs from this run's config"):
        validate_checkpoint("model.pt", tiny_config(name="other").to_dict())
