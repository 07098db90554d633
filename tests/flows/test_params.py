"""Parameter models, the one resolver for roots and services, and the CLI's one failure line: units, no server."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.cli import EXIT_FAILED, EXIT_USAGE, describe_failure, size_arg
from flows.failures import TrainingFailed
from flows.params import compose, settings_of
from flows.predict import TrainPredictorParams
from flows.preprocess import PreprocessParams
from flows.rebuild import RebuildParams
from flows.train import TrainParams
from models.training import TrainJob, TrainSettings
from storage import layout, locations
from storage.errors import InvalidNameError

ENV = {"data_root": "VID2VID_DATA_ROOT", "runs_root": "VID2VID_RUNS_ROOT", "weights_dir": "VID2VID_WEIGHTS_DIR",
       "dask_address": "VID2VID_DASK_ADDRESS", "ray_address": "VID2VID_RAY_ADDRESS"}
DEFAULTS = {"data_root": Path("data"), "runs_root": Path("runs"), "weights_dir": Path("weights"),
            "dask_address": None, "ray_address": None}


@pytest.mark.parametrize("name", sorted(ENV))
def test_each_location_resolves_argument_then_environment_then_default(name, monkeypatch):
    resolve = getattr(locations, name)
    monkeypatch.delenv(ENV[name], raising=False)
    assert resolve(None) == DEFAULTS[name]
    monkeypatch.setenv(ENV[name], "from-env")
    assert str(resolve(None)) == "from-env"
    assert str(resolve("from-arg")) == "from-arg"


def test_the_layout_data_root_is_the_same_resolver(monkeypatch):
    monkeypatch.setenv("VID2VID_DATA_ROOT", "/somewhere/data")
    assert layout.data_root() == locations.data_root() == Path("/somewhere/data")


def test_parameter_models_refuse_unknown_keys_at_every_level():
    with pytest.raises(ValidationError, match="max_step"):
        RebuildParams(max_step=3)  # a typo is refused, not ignored
    with pytest.raises(ValidationError, match="train.max_step"):
        RebuildParams.model_validate({"train": {"max_step": 3}})
    with pytest.raises(ValidationError, match="no option 'arch'"):
        RebuildParams.model_validate({"preprocess": {"backends": {"flow": {"backend": "dis", "arch": "resnet101"}}}})
    with pytest.raises(ValidationError, match="unknown metrics"):
        RebuildParams.model_validate({"evaluate": {"metrics": ["warp", "lpips"]}})
    with pytest.raises(ValidationError):
        TrainParams(dataset="street", inject_nan_at_step=3)  # test switches are not in the form
    assert not {"faults", "inject_nan_at_step", "inject_failure_at_step"} & set(TrainParams.model_fields)


def test_settings_pass_through_composition_untouched():
    """A training knob set on the rebuild's form arrives in the job the workers get, with no copy code."""
    chosen = {"window_frames": 3, "epochs": 2, "max_steps": 7, "workers": 3, "gpus_per_worker": 0.5, "bf16": False,
              "report_every": 2, "diagnose_every": 5, "checkpoint_every": 4, "keep_checkpoints": 3, "max_failures": 1,
              "ray_address": "ray://head:10001", "init_from": "/models/imported.pt"}
    assert set(chosen) == set(TrainSettings.model_fields)  # every knob is covered by this test
    rebuild = RebuildParams.model_validate({"train": chosen})
    train = compose(TrainParams, rebuild.train, dataset="street", config="tiny", mode="rebuild")
    job = TrainJob(**settings_of(train, TrainSettings), dataset="street", data_root="/d", model={}, run_dir="/r")
    assert settings_of(job, TrainSettings) == chosen

    pre = compose(PreprocessParams, RebuildParams.model_validate({"preprocess": {"resolution": [320, 160],
                                                                              "workers": 3}}).preprocess,
                  dataset="street")
    assert pre.resolution == (320, 160) and pre.workers == 3 and pre.stage_list  # (width, height) as given


def test_a_run_is_continued_or_started_from_weights_not_both():
    with pytest.raises(ValidationError, match="give one of them"):
        TrainParams(dataset="street", resume_from="/runs/a/model.pt", init_from="/models/imported.pt")
    assert TrainParams(dataset="street", init_from="/models/imported.pt").init_from == "/models/imported.pt"
    with pytest.raises(ValidationError, match="the mask predictor has no such start"):
        TrainPredictorParams(dataset="street", init_from="/models/imported.pt")  # a shared knob, never ignored


def test_sizes_are_width_by_height():
    assert size_arg("--size")("256x128") == (256, 128)
    for bad in ("256", "0x32", "-64x32", "100000x100000"):
        with pytest.raises(argparse.ArgumentTypeError, match="--size"):
            size_arg("--size")(bad)
    assert RebuildParams().synth.size == (128, 64)


@pytest.mark.parametrize("exc, code, text", [
    (TrainingFailed("training of 'street' failed: stopped at step 3;\nthe last good checkpoint is at /x"), EXIT_FAILED,
     "training of 'street' failed: stopped at step 3; the last good checkpoint is at /x"),
    (InvalidNameError("invalid dataset name '../x'"), EXIT_USAGE, "invalid dataset name '../x'"),
    (FileNotFoundError("no manifest at /d"), EXIT_USAGE, "no manifest at /d"),
    (RuntimeError("boom"), EXIT_FAILED, "RuntimeError: boom (--debug shows the traceback)"),
])
def test_every_failure_becomes_one_line_and_an_exit_code(exc, code, text):
    assert describe_failure(exc) == (code, text)


def test_a_validation_error_names_the_field_in_one_line():
    with pytest.raises(ValidationError) as failure:
        RebuildParams.model_validate({"preprocess": {"backends": {"flow": {"backend": "dis", "prest": "fast"}}}})
    code, line = describe_failure(failure.value)
    assert code == EXIT_USAGE and "\n" not in line
    assert line == "invalid RebuildParams parameters: preprocess.backends.flow.prest: Extra inputs are not permitted ('fast')"


def test_worker_options_are_named_for_what_they_count_and_workers_stays_an_alias():
    from flows.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--dataset", "d", "--train-workers", "3"]).workers == 3
    assert parser.parse_args(["train", "--dataset", "d", "--workers", "3"]).workers == 3
    rebuild = parser.parse_args(["rebuild", "--dataset", "d", "--dask-workers", "1", "--train-workers", "2"])
    assert (rebuild.workers, rebuild.train_workers) == (1, 2)
    assert parser.parse_args(["preprocess", "--dataset", "d", "--stages", "flow", "--dask-workers", "4"]).workers == 4
    assert parser.parse_args(["train-predictor", "--dataset", "d", "--train-workers", "1"]).workers == 1


def test_set_changes_model_config_fields_by_dotted_name_checked_by_the_config_model():
    from models.vid2vid.config import load_model_config, parse_settings

    settings = parse_settings(["train.lr=5e-4", "generator.n_prev=1", "loss.use_vgg=false", "train.lr=0.0003"])
    assert settings == {"train.lr": 0.0003, "generator.n_prev": 1, "loss.use_vgg": False}  # YAML values; last wins
    config, preset = load_model_config("tiny", settings), load_model_config("tiny")
    assert (config.train.lr, config.generator.n_prev, config.loss.use_vgg) == (0.0003, 1, False)
    assert config.model_copy(update={"train": preset.train, "generator": preset.generator, "loss": preset.loss}) == preset
    with pytest.raises(ValueError, match=r"--set train.lrr: train has no field 'lrr'; its fields: lr, "):
        load_model_config("tiny", {"train.lrr": 1})
    with pytest.raises(ValueError, match=r"--set train.lr.x: train.lr is a value, not a section"):
        load_model_config("tiny", {"train.lr.x": 1})
    with pytest.raises(ValueError, match="--set expects KEY=VALUE"):
        parse_settings(["train.lr"])
    with pytest.raises(ValidationError) as failure:  # a wrong value: refused at the edge, naming the field
        TrainParams(dataset="d", config_set={"train.lr": "fast"})
    assert describe_failure(failure.value)[1].startswith("invalid TrainParams parameters: train.lr: Input should be")
    with pytest.raises(ValidationError, match="generator has no field 'n_prevv'"):
        RebuildParams(config_set={"generator.n_prevv": 1})


@pytest.mark.parametrize("command", ["train", "rebuild"])
def test_a_wrong_set_exits_2_naming_the_field_before_anything_runs(command, vid2vid, tmp_path):
    done = vid2vid("--data-root", str(tmp_path / "data"), command, "--dataset", "d", "--runs-root",
                   str(tmp_path / "runs"), "--set", "train.batch_size=0")
    assert done.returncode == EXIT_USAGE
    assert "train.batch_size: Input should be greater than or equal to 1" in done.stderr, done.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "train-predictor"])
def test_training_options_take_help_and_default_from_the_settings_fields(command):
    from flows.cli import TRAINING_OPTIONS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for name, flags in TRAINING_OPTIONS.items():
        action = next(a for a in sub._actions if a.dest == name)
        field = TrainSettings.model_fields[name]
        assert list(action.option_strings) == list(flags) and action.help.startswith(field.description)
        assert action.default is None  # not given: the parameter model's own default is in force
    parsed = parser.parse_args([command, "--dataset", "d", "--checkpoint-every", "3", "--gpus-per-worker", "0.5"])
    assert (parsed.checkpoint_every, parsed.gpus_per_worker, parsed.max_steps) == (3, 0.5, None)
