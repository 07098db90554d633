"""`vid2vid reference-model`: one command builds the recipe's data, trains, packs, scores the packed file and
writes the card; `--resume-from latest` continues the run and the card sums both segments' time."""

from __future__ import annotations

import json

import pytest

from models.reference.card import read_card
from models.vid2vid.checkpoint import load_checkpoint

#: the session's Dask scheduler and Ray head (tests/conftest.py): the command's subject is data, training, packing and
#: the card, not starting a cluster (each of its two segments would start a local Dask cluster and a local Ray)
pytestmark = pytest.mark.usefixtures("prefect_server", "shared_services")


def test_the_command_trains_packs_cards_and_resumes_with_the_total_time(tmp_path, vid2vid) -> None:
    common = ("--data-root", str(tmp_path / "data"), "reference-model", "--name", "street", "--workers", "1",
              "--nice", "0", "--metrics", "psnr,warp", "--runs-root", str(tmp_path / "runs"),
              "--out-dir", str(tmp_path / "shipped"))
    first = vid2vid(*common, "--steps", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    card = read_card(tmp_path / "shipped" / "street")
    assert card.steps == 1 and len(card.wall_time.segments) == 1 and "SMOKE" in card.budget_note
    assert card.data.heldout_clips == ["street_0000_006", "street_0000_007"]  # the demo's split: the last 2 of 8
    assert set(card.heldout.metrics) == {"psnr", "warp_error"} and card.heldout.frames_scored == 46
    assert f"reference model street: 1 steps -> {tmp_path / 'shipped' / 'street' / 'model.pt'}" in first.stdout

    refused = vid2vid(*common, "--steps", "1", "--resume-from", "latest")
    assert refused.returncode == 2 and "is at step 1 already: give --steps above it" in refused.stderr

    second = vid2vid(*common, "--steps", "2", "--resume-from", "latest")
    assert second.returncode == 0, second.stderr[-3000:]
    card = read_card(tmp_path / "shipped" / "street")
    first_run, second_run = [s.run_dir for s in card.wall_time.segments]
    assert [(s.start_step, s.end_step) for s in card.wall_time.segments] == [(0, 1), (1, 2)]
    assert card.wall_time.segments[1].resumed_from == str(tmp_path / "runs" / first_run.split("/")[-1] / "model.pt")
    assert card.wall_time.training_seconds == pytest.approx(sum(s.seconds for s in card.wall_time.segments), abs=0.11)
    assert load_checkpoint(tmp_path / "shipped" / "street" / "model.pt")["step"] == 2 == card.steps
    ledger = json.loads((tmp_path / "runs" / second_run.split("/")[-1] / "reference.json").read_text())
    assert len(ledger["segments"]) == 2
    assert (tmp_path / "runs" / "evaluations" / "street" / "reference-street" / "comparison.json").is_file()
