"""A rebuild calls training unchanged only for a run asked for the same budget: the demo's 64-step rebuild
once reported a 1200-step run of the same config and data as its own."""

from __future__ import annotations

import json
from pathlib import Path

from models.training.launch import SUMMARY_FILE, same_budget


def _run(tmp_path: Path, name: str, max_steps: int | None, epochs: int | None) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / SUMMARY_FILE).write_text(json.dumps({"steps": 7, "job": {"max_steps": max_steps, "epochs": epochs}}))
    return run


def test_the_budget_a_run_was_asked_for_decides_not_the_steps_it_reached(tmp_path) -> None:
    asked_64 = _run(tmp_path, "a", 64, None)
    assert same_budget(asked_64, 64, None, steps=64)
    assert not same_budget(asked_64, 1200, None, steps=64) and not same_budget(asked_64, None, None, steps=64)
    assert not same_budget(asked_64, 64, 3, steps=64)  # another epoch limit is another training
    # the epoch limit ended it at 7 of 50 steps: asking 50 again trains the same 7, so it is unchanged
    assert same_budget(_run(tmp_path, "b", 50, None), 50, None, steps=7)


def test_a_run_without_a_summary_counts_when_it_trained_exactly_the_steps_asked(tmp_path) -> None:
    imported = tmp_path / "imported"
    imported.mkdir()
    assert same_budget(imported, 30, None, steps=30) and same_budget(imported, None, None, steps=12)
    assert not same_budget(imported, 30, None, steps=12)
