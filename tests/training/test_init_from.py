"""``vid2vid train --init-from``: a stand-in official experiment imported with the CLI starts a new two-step run
(Ray Train, one CPU worker, on the session's Ray head); wrong files and wrong requests are refused on the driver
with exit 2 (those CLI calls run in process: the refusal is the subject, not the process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flows.cli import main
from models.training.launch import read_metrics
from models.vid2vid.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from models.vid2vid.config import ModelConfig
from models.vid2vid.discriminators import Discriminators
from models.vid2vid.generator import Vid2VidGenerator
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip
from tests.conftest import run_cli
from tests.models.helpers_vid2vid import tiny_config
from tests.models.test_official_discriminators import D_ARCH, write_official_experiment
from tests.models.test_official_import import ARCH

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A tiny dataset, a stand-in official experiment folder (G0, G1, D, D_T0, D_T1, opt.txt), the preset that
    describes it with learning rate 0 (so weights that started from the file stay the file's), and its import."""
    base = tmp_path_factory.mktemp("init_from")
    layout = DatasetLayout(base / "data", "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, 64, 32, 8, split="train") for k in range(2)])
    config = tiny_config(generator={**ARCH, "composition": "official", "test_norm_stats": "batch"},
                         discriminator={**D_ARCH, "scale_widths": "official", "video_flow_scale": 0.05},
                         train={"lr": 0.0})
    folder, preset = write_official_experiment(base, config, seed=3)
    imported = base / "imported.pt"
    assert main(["import-official", "--checkpoint-dir", str(folder), "--preset", str(preset), "--out", str(imported)]) == 0
    return {"data": layout.root, "runs": base / "runs", "preset": preset, "imported": imported}


def _train(setup: dict[str, Path], *args: str, cli=run_cli):  # noqa: ANN001 - run_cli or the vid2vid fixture
    return cli("--data-root", str(setup["data"]), "train", "--dataset", "street", "--runs-root", str(setup["runs"]),
               "--workers", "1", "--max-steps", "2", "--checkpoint-every", "2", *args)


def test_a_run_starts_from_the_imported_weights_at_step_zero(setup, shared_services) -> None:
    done = _train(setup, "--config", str(setup["preset"]), "--run-name", "init", "--init-from", str(setup["imported"]))
    assert done.returncode == 0, done.stderr[-3000:]
    run = setup["runs"] / "init"
    attempts = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    assert attempts == [{"start_step": 0, "workers": 1, "skipped_batches": 0,
                         "origin": f"init-from:{setup['imported'].resolve()} (generator, discriminators)"}]
    assert [m["step"] for m in read_metrics(run)] == [1.0, 2.0]  # a new run: steps 1, 2 (not the file's)
    trained, imported = load_checkpoint(run / "model.pt"), load_checkpoint(setup["imported"])
    assert trained["format"] == CHECKPOINT_FORMAT and trained["step"] == 2 and imported["step"] == 0
    # learning rate 0: every weight the run trained with is still the file's (buffers such as running
    # statistics do move), so step 1 started from the imported generator and discriminators
    config = ModelConfig.model_validate(trained["config"])
    g_params = [k for k, _ in Vid2VidGenerator(config).named_parameters()]
    d_params = [k for k, _ in Discriminators(config).named_parameters()]
    assert all(torch.equal(trained["generator"][k], imported["generator"][k]) for k in g_params)
    assert all(torch.equal(trained["discriminators"][k], imported["discriminators"][k]) for k in d_params)
    fresh = Vid2VidGenerator(config).state_dict()
    assert not torch.equal(fresh["scales.0.bg_out.1.weight"], trained["generator"]["scales.0.bg_out.1.weight"])
    assert trained["optimizer_G"]["state"]  # new optimisers, stepped twice in this run
    console = done.stdout + done.stderr  # what the user reads: one progress line per step, not Ray's report dumps
    assert "Reporting training result" not in console and "TrainingReport(" not in console


def test_an_architecture_mismatch_is_one_error_line_and_starts_nothing(setup, vid2vid) -> None:
    done = _train(setup, "--config", "tiny", "--run-name", "mismatch", "--init-from", str(setup["imported"]), cli=vid2vid)
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"--init-from {setup['imported'].resolve()} does not fit this run's model config 'tiny'" in line
    assert "generator" in line and "file (" in line  # the first differing keys and shapes
    assert not (setup["runs"] / "mismatch").exists()


def test_an_imported_file_cannot_be_resumed_and_the_error_says_what_to_use(setup, vid2vid) -> None:
    """(A missing file, both --resume-from and --init-from: tests/models/test_init_from.py, tests/flows/test_params.py.)"""
    resumed = _train(setup, "--config", str(setup["preset"]), "--run-name", "resumed",
                     "--resume-from", str(setup["imported"]), cli=vid2vid)
    assert resumed.returncode == 2, resumed.stderr[-3000:]
    assert "imported model" in resumed.stderr and "--init-from" in resumed.stderr
    assert not (setup["runs"] / "resumed").exists()
