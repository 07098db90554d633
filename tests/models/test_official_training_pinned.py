"""Our training step pinned to NVIDIA's train.py: the per-term losses of a fixed seed, recorded from their code.

``scripts/compare_official_training.py --official-repo DIR --pin tests/models/data/official_training_terms.json``
ran their ``Vid2VidModelG`` / ``Vid2VidModelD`` (commit in the file) from our seeded weights (in their layout) on
the script's two tiny sequences and wrote every loss term of every update. Here our trainer, with the official
recipe options, trains the same sequences from the same seed without their code: every term must match.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = Path(__file__).parent / "data" / "official_training_terms.json"


def _script():
    spec = importlib.util.spec_from_file_location("compare_official_training", ROOT / "scripts" / "compare_official_training.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_every_loss_term_equals_the_value_recorded_from_nvidias_code(tmp_path) -> None:
    pin = json.loads(PIN.read_text())
    assert len(pin["official_commit"]) == 40 and pin["official_commit"].startswith("2e6d137")
    script = _script()
    script.H, script.W = pin["size"]
    assert script.preset(1, True) == pin["preset"]  # the recipe the values were recorded with
    script.make_inputs(tmp_path)
    mine = script.ours(tmp_path, 1, True, "float32", own_init=True)
    factors = {**{k: f for k, (_, f) in script.TERMS.items()}, "G_total": 1, "D_total": 1,
               **{f"{k}{s}": f for k, (_, f) in script.TERMS_T.items() for s in range(2)}}
    assert len(mine["terms"]) == 4 and {int(k.split(":")[0]) for k in pin["terms"]} == {1, 2, 3, 4}
    assert any(k.endswith(":G_GAN_V1") for k in pin["terms"])  # the coarser temporal scale was reached
    for key, theirs in pin["terms"].items():
        update, name = key.split(":")
        ours = mine["terms"][int(update) - 1].get(name, 0.0) * factors[name]
        # updates 1-3 as recorded (<= 4e-6 measured); by update 4 float32 rounding, which Adam's early
        # sign-like steps turn into lr-sized steps on near-zero gradients, has grown to 1.8e-3 on both sides
        assert ours == pytest.approx(theirs, rel=1e-4 if int(update) <= 3 else 1e-2, abs=1e-6), key
