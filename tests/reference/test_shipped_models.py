"""The shipped reference models (reference_models/): every file verifies against its card and the weights
registry, its card is complete and matches its preset and recipe, the held-out PSNR is reproduced from
regenerated data within 0.1 dB, and `--init-from reference:NAME` fine-tunes through the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from models import weights
from models.reference.card import MAX_MODEL_BYTES, PREFIX, reference_dir, shipped_models
from models.reference.pack import heldout_psnr
from models.reference.recipe import StreetData, load_recipe, recipe_names
from models.reference.registry import resolve_model_file
from models.vid2vid.checkpoint import REFERENCE_FORMAT, load_checkpoint
from models.vid2vid.config import load_model_config
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import clip_seed, synthetic_splits, write_synthetic_clip


SHIPPED = [m for m in shipped_models()]
STREET = [m for m in SHIPPED if m.card is not None and m.card.data.kind == "synthetic_street"]


def test_the_repository_ships_at_least_one_reference_model_and_every_card_reads() -> None:
    assert SHIPPED, f"no shipped model under {reference_dir()}: `make reference-models` builds them"
    assert [m.problem for m in SHIPPED if m.problem] == []


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: m.name)
def test_a_shipped_file_verifies_and_its_card_matches_preset_recipe_and_file(shipped) -> None:
    card = shipped.card
    path = shipped.model_path
    assert path.is_file() and path.stat().st_size == card.size_bytes <= MAX_MODEL_BYTES
    assert weights.file_sha256(path) == card.sha256
    spec = weights.get_spec(f"{PREFIX}{card.name}")  # registered from the card, checked like every weight
    assert spec.sha256 == card.sha256 and weights.expected_path(spec) == path
    [row] = [r for r in weights.status() if r["name"] == spec.name]
    assert row["status"] == "verified (sha256)"
    assert resolve_model_file(f"{PREFIX}{card.name}") == path
    recipe = load_recipe(card.name)
    assert (card.preset, card.twin, card.budget_steps) == (recipe.preset, recipe.twin, recipe.budget.steps)
    assert card.data.recipe == recipe.data.model_dump(mode="json")
    state = load_checkpoint(path)
    assert state["format"] == REFERENCE_FORMAT and state["step"] == card.steps
    assert card.config == state["config"] == load_model_config(card.preset).to_dict()
    assert set(card.parts) >= {"generator", "discriminators"}
    for part in card.parts:  # fp16 floats (counters such as num_batches_tracked stay integers)
        assert {t.dtype for t in state[part].values() if t.is_floating_point()} == {torch.float16}
    # every field a reader needs, filled
    assert card.command.endswith(f"reference-model --name {card.name} --steps {card.steps}")
    assert card.wall_time.training_seconds > 0 and card.wall_time.segments[-1].end_step == card.steps
    assert card.machine.cpu_count > 0 and card.machine.torch
    assert len(card.code_commit) == 40 and len(card.data.train_fingerprint) >= 12 and card.data.heldout_clips
    assert f"--name {card.name} --data-only" in card.data.regenerate
    assert isinstance(card.heldout.metrics["psnr"], float) and card.heldout.frames_scored > 0
    assert "frame 0" in card.heldout.protocol
    if card.steps < card.budget_steps:  # a shorter run says so in its card
        assert "SMOKE" in card.budget_note and str(card.budget_steps) in card.budget_note
    markdown = (shipped.folder / "card.md").read_text()
    assert card.sha256 in markdown and card.command in markdown and card.data.regenerate in markdown


def test_a_corrupt_or_unknown_shipped_model_is_refused_by_name(tmp_path) -> None:
    shipped = SHIPPED[0]
    copy = tmp_path / shipped.name
    shutil.copytree(shipped.folder, copy)
    data = bytearray((copy / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.pt").write_bytes(bytes(data))
    spec = dataclasses.replace(weights.get_spec(f"{PREFIX}{shipped.name}"), directory=str(copy))
    with pytest.raises(weights.ChecksumMismatchError, match=str(copy / "model.pt")):
        weights.verify_checksum(spec, weights.expected_path(spec))
    with pytest.raises(ValueError, match=rf"no shipped reference model 'nope'.*{shipped.name}"):
        resolve_model_file("reference:nope")


def test_the_street_recipes_draw_exactly_the_demos_data() -> None:
    from flows.demo import BASELINE_CONFIG, DEMO_CLIPS, DEMO_CONFIG, DEMO_FRAMES, DEMO_SIZE
    from flows.ingest import SynthSettings

    defaults = SynthSettings()
    for name, preset in (("street", DEMO_CONFIG), ("street_frame", BASELINE_CONFIG)):
        recipe = load_recipe(name)
        assert recipe.preset == preset
        assert (recipe.data.clips, recipe.data.frames, tuple(recipe.data.size)) == (DEMO_CLIPS, DEMO_FRAMES, DEMO_SIZE)
        assert (recipe.data.seed, recipe.data.val_fraction) == (defaults.seed, defaults.val_fraction)
    assert set(recipe_names()) == {"street", "street_frame", "face", "face_frame"}
    for name in recipe_names():  # twins: the same data and budget, the other method
        recipe, twin = load_recipe(name), load_recipe(load_recipe(name).twin)
        assert (recipe.data, recipe.budget) == (twin.data, twin.budget) and twin.twin == name
        assert recipe.is_frame_by_frame != twin.is_frame_by_frame
        assert load_model_config(recipe.preset).frame_by_frame == recipe.is_frame_by_frame


def regenerate_heldout_street(root: Path, data: StreetData) -> DatasetLayout:
    """The recipe's held-out clips, drawn as the synth flow draws them (only those: the score needs no more)."""
    layout = DatasetLayout(root, data.dataset)
    splits = synthetic_splits(data.clips, data.val_fraction)
    write_manifest(layout, [write_synthetic_clip(layout, f"street_{data.seed:04d}_{k:03d}", clip_seed(data.seed, k),
                                                 *data.size, data.frames, split)
                            for k, split in enumerate(splits) if split == "val"])
    return layout


@pytest.mark.parametrize("shipped", STREET, ids=lambda m: m.name)
def test_the_cards_psnr_is_reproduced_from_regenerated_heldout_data(shipped, tmp_path) -> None:
    from flows.evaluate import evaluation_data_fingerprint

    card = shipped.card
    layout = regenerate_heldout_street(tmp_path / "data", StreetData.model_validate(card.data.recipe))
    assert evaluation_data_fingerprint(layout, card.data.heldout_clips) == card.data.heldout_fingerprint
    psnr, frames = heldout_psnr(f"{PREFIX}{card.name}", layout, card.data.heldout_clips)
    assert frames == card.heldout.frames_scored
    assert abs(psnr - card.heldout.metrics["psnr"]) <= 0.1, (psnr, card.heldout.metrics["psnr"])


@pytest.mark.usefixtures("prefect_server")
def test_init_from_a_shipped_model_fine_tunes_on_a_tiny_dataset_through_the_cli(tmp_path, ray_head, vid2vid) -> None:
    shipped = next((m for m in STREET if m.card.preset == "demo_street"), STREET[0])
    config = load_model_config(shipped.card.preset)
    layout = DatasetLayout(tmp_path / "data", "mine")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", 100 + k, config.input.width, config.input.height, 8)
                            for k in range(2)])
    done = vid2vid("--data-root", str(layout.root), "train", "--dataset", "mine", "--config", shipped.card.preset,
                   "--runs-root", str(tmp_path / "runs"), "--run-name", "tuned", "--workers", "1", "--max-steps", "1",
                   "--checkpoint-every", "1", "--init-from", f"reference:{shipped.name}", "--ray-address", ray_head)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "tuned"
    [attempt] = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    assert attempt["origin"] == f"init-from:{shipped.model_path.resolve()} (generator, discriminators)"
    tuned = load_checkpoint(run / "model.pt")
    assert tuned["step"] == 1 and tuned["generator"]["scales.0.bg_out.1.weight"].dtype == torch.float32


def test_vid2vid_weights_lists_the_shipped_models_as_verified(vid2vid) -> None:
    done = vid2vid("weights")
    assert done.returncode == 0, done.stderr
    for shipped in SHIPPED:
        assert f"reference:{shipped.name}" in done.stdout
