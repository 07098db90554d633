"""No output option overwrites what the pipeline manages under the runs root (issue 24: `synthesize --out
runs/m/model.pt` turned a trained model into an MP4). In process through the CLI's own ``main([...])``: each
output option against each kind of managed file, directly and through a symlink; one error line, exit 2,
the file untouched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from storage.video import encode

MANAGED_FILES = {
    "model": "m/model.pt",
    "ray-checkpoint": "m/ray/train/checkpoint_000001/checkpoint.pt",
    "ray-state": "m/ray/train/trainer_state.json",
    "metrics": "m/metrics.jsonl",
    "attempts": "m/attempts.jsonl",
    "summary": "m/summary.json",
    "tensorboard": "m/tensorboard/events.out.tfevents.1.vm",
    "evaluation": "evaluations/street/comparison.json",
    "evaluation-video": "evaluations/street/videos/m/c0.mp4",
    "review-db": "review/review.db",
    "latest-pointer": "latest-street.json",
}
MANAGED_FOLDERS = {"runs-root": ".", "run": "m", "ray": "m/ray", "tensorboard": "m/tensorboard",
                   "evaluations": "evaluations/street", "review": "review"}


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    for rel in MANAGED_FILES.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"ours: " + rel.encode())
    monkeypatch.setenv("VID2VID_RUNS_ROOT", str(root))
    monkeypatch.setenv("VID2VID_DATA_ROOT", str(tmp_path / "data"))
    return root


def _options(option: str, runs: Path, target: str) -> list[str]:
    model = str(runs / "m" / "model.pt")
    if option == "synthesize --out":
        return ["synthesize", "--checkpoint", model, "--dataset", "street", "--clip", "c0", "--out", target]
    if option == "synthesize --frames-dir":
        return ["synthesize", "--checkpoint", model, "--dataset", "street", "--clip", "c0", "--out",
                str(runs.parent / "fine.mp4"), "--frames-dir", target]
    if option == "predict --out":
        return ["predict", "--checkpoint", model, "--predictor", model, "--dataset", "street", "--clip", "c0",
                "--out", target]
    return ["import-official", "--checkpoint-dir", str(runs.parent / "official"), "--out", target]


OPTIONS = ["synthesize --out", "synthesize --frames-dir", "predict --out", "import-official --out"]


def _refused(capsys, argv: list[str], resolved: Path) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: refusing to write"), err
    assert str(resolved) in err[0]


@pytest.mark.parametrize("kind", sorted(MANAGED_FILES))
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("via", ["path", "symlink"])
def test_every_output_option_refuses_every_managed_file(runs, capsys, tmp_path, option, kind, via):
    target = runs / MANAGED_FILES[kind]
    given = target
    if via == "symlink":  # a harmless-looking name outside the runs root that resolves onto the managed file
        given = tmp_path / "elsewhere" / ("video.mp4" if "frames" not in option else "frames")
        given.parent.mkdir()
        given.symlink_to(target)
    before = target.read_bytes()
    _refused(capsys, _options(option, runs, str(given)), target)
    assert target.read_bytes() == before


@pytest.mark.parametrize("kind", sorted(MANAGED_FOLDERS))
def test_frames_dir_refuses_managed_folders(runs, capsys, kind):
    folder = (runs / MANAGED_FOLDERS[kind]).resolve()
    listing = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    _refused(capsys, _options("synthesize --frames-dir", runs, str(folder)), folder)
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == listing


@pytest.mark.parametrize("option", ["synthesize --out", "predict --out"])
def test_the_model_being_read_is_refused_wherever_it_is(runs, capsys, tmp_path, option):
    """Outside any runs root too: a model file next to nothing else is still the command's input."""
    lone = tmp_path / "lone" / "weights.pt"
    lone.parent.mkdir()
    lone.write_bytes(b"a model")
    argv = _options(option, runs, str(lone))
    argv[argv.index("--checkpoint") + 1] = str(lone)
    _refused(capsys, argv, lone)
    assert lone.read_bytes() == b"a model"


def test_new_outputs_beside_managed_files_are_allowed(runs, tmp_path):
    from storage.outputs import check_synthesis_outputs

    out, review, frames = check_synthesis_outputs(str(runs / "m" / "sample.mp4"), str(runs / "m" / "frames"), True,
                                                  None, [str(runs / "m" / "model.pt")])
    assert out == runs / "m" / "sample.mp4" and review == runs / "m" / "sample.side_by_side.mp4"
    assert frames == runs / "m" / "frames"
    from storage.outputs import check_output

    assert check_output(runs / "official" / "model.pt", "--out") == runs / "official" / "model.pt"  # a new folder
    (runs / "m2").mkdir()
    (runs / "m2" / "metrics.jsonl").write_text("{}")  # a run that has no model yet: its model.pt is still ours
    with pytest.raises(ValueError, match="a run's managed file"):
        check_output(runs / "m2" / "model.pt", "--out")


def test_an_existing_foreign_output_is_replaced_whole_never_in_place(tmp_path):
    out = tmp_path / "theirs.mp4"
    out.write_bytes(b"someone else's file")
    os.link(out, tmp_path / "second-name")  # the old inode stays reachable: in-place writing would change it
    encode(out, [np.zeros((16, 16, 3), np.uint8)] * 2, 10)
    assert (tmp_path / "second-name").read_bytes() == b"someone else's file"
    assert out.read_bytes()[4:8] == b"ftyp"
