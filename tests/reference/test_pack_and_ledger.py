"""Packing a run into the shipped form, and the card's wall time summed over resumed (and killed) segments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.reference.card import Segment
from models.reference.pack import pack_model
from models.reference.provenance import LEDGER, segments_until
from models.vid2vid.checkpoint import (REFERENCE_FORMAT, CheckpointError, load_checkpoint, load_discriminators,
                                       load_generator, save_checkpoint, validate_checkpoint, validate_init_from)
from models.vid2vid.trainer import Vid2VidTrainer
from tests.models.helpers_vid2vid import tiny_config


def test_a_packed_model_holds_fp16_weights_that_load_back_into_the_same_networks(tmp_path) -> None:
    config = tiny_config()
    trainer = Vid2VidTrainer(config)
    run_model = save_checkpoint(tmp_path / "run" / "model.pt", trainer)
    parts = pack_model(run_model, tmp_path / "ref" / "model.pt")
    assert parts == ["generator", "discriminators"]
    packed = load_checkpoint(tmp_path / "ref" / "model.pt")
    assert packed["format"] == REFERENCE_FORMAT and "optimizer_G" not in packed
    assert (tmp_path / "ref" / "model.pt").stat().st_size < 0.6 * run_model.stat().st_size  # no optimizers, half floats
    generator, loaded_config = load_generator(tmp_path / "ref" / "model.pt")
    assert loaded_config == config
    original = trainer.state_dict()["generator"]
    for key, value in generator.state_dict().items():  # float32 modules, weights rounded to fp16 and back
        assert value.dtype == original[key].dtype
        if value.is_floating_point():
            torch.testing.assert_close(value, original[key].half().float(), rtol=0, atol=0)
    assert load_discriminators(tmp_path / "ref" / "model.pt") is not None
    assert validate_init_from(tmp_path / "ref" / "model.pt", config.to_dict())[1] == ["generator", "discriminators"]
    with pytest.raises(CheckpointError, match="shipped reference model .* --init-from"):
        validate_checkpoint(tmp_path / "ref" / "model.pt")  # nothing to resume: no optimizers, no schedule
    with pytest.raises(CheckpointError, match="not a trained run.s model file"):
        pack_model(tmp_path / "ref" / "model.pt", tmp_path / "again.pt")


def _run(folder: Path, start: int, origin: str, step_seconds: dict[int, float]) -> Path:
    folder.mkdir(parents=True)
    (folder / "attempts.jsonl").write_text(json.dumps({"start_step": start, "origin": origin, "workers": 2}) + "\n")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": float(s), "seconds_per_step": v}) + "\n"
                                                  for s, v in step_seconds.items()))
    checkpoint = folder / "ray" / "train" / "checkpoint_000001" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    return checkpoint


def test_the_wall_time_sums_every_segment_a_finished_one_from_its_ledger_a_killed_one_from_its_steps(tmp_path) -> None:
    # segment 1 finished (its ledger says 100 s for steps 0-20); segment 2 resumed from it and was killed after
    # step 30, checkpointed at 28; the segments that lead to that checkpoint:
    first = tmp_path / "reference-street-1"
    _run(first, 0, "fresh", {s: 4.0 for s in range(1, 21)})
    (first / "model.pt").write_bytes(b"")
    (first / LEDGER).write_text(json.dumps({"segments": [
        Segment(run_dir=str(first), start_step=0, end_step=20, seconds=100.0).model_dump()]}))
    killed = _run(tmp_path / "reference-street-2", 20, f"resume-from:{first / 'model.pt'}",
                  {s: 2.5 for s in range(21, 31)})
    segments = segments_until(killed, 28)
    assert [(s.start_step, s.end_step, s.seconds, s.estimated) for s in segments] == [
        (0, 20, 100.0, False), (20, 28, 20.0, True)]  # 8 steps x 2.5 s: the killed run's steps up to the checkpoint
    assert segments[1].resumed_from == str(first / "model.pt")
    # a checkpoint of a run that never finished and started fresh: its own steps only
    alone = _run(tmp_path / "reference-street-3", 0, "fresh", {1: 3.0, 2: 3.0, 3: 3.0})
    assert [(s.start_step, s.end_step, s.seconds) for s in segments_until(alone, 2)] == [(0, 2, 6.0)]
    assert segments_until(tmp_path / "elsewhere" / "model.pt", 5) == []
