"""The CLI's options are declared once: shared root options as one parent parser each, and options that fill a
parameter model's field take their help and default from that field (flows/cli/options.py). No server, no flow."""

from __future__ import annotations

import argparse
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from flows.cli import build_parser
from flows.cli.options import (CONFIG_SET, DASK_ADDRESS, DASK_WORKERS, LOOKUP_RUNS_ROOT, METRICS, RAY_ADDRESS,
                               REGISTRY, RUNS_ROOT, WEIGHTS_DIR, WEIGHTS_DIR_AGAIN, field_option, form, size_arg)
from flows.forms import (EvaluateParams, PredictParams, PreprocessParams, ReferenceParams, SynthesizeParams,
                         SynthParams, TrainParams, TrainPredictorParams)

#: the parameter model each command fills
COMMAND_MODELS = {"synth": SynthParams, "preprocess": PreprocessParams, "train": TrainParams,
                  "train-predictor": TrainPredictorParams, "synthesize": SynthesizeParams, "evaluate": EvaluateParams,
                  "reference-model": ReferenceParams, "predict": PredictParams}
#: the fewest arguments each command takes, and the model those alone make
REQUIRED = {"synth": ([], {}), "preprocess": (["--dataset", "d"], {"dataset": "d"}),
            "train": (["--dataset", "d"], {"dataset": "d"}), "train-predictor": (["--dataset", "d"], {"dataset": "d"}),
            "synthesize": (["--checkpoint", "m.pt", "--dataset", "d", "--clip", "c", "--out", "o.mp4"],
                           {"checkpoint": "m.pt", "dataset": "d", "clip": "c", "out": "o.mp4"}),
            "evaluate": (["--dataset", "d", "--runs", "a,b"], {"dataset": "d", "runs": ["a", "b"]}),
            "reference-model": (["--name", "street"], {"name": "street"}),
            "predict": (["--checkpoint", "m.pt", "--predictor", "p.pt", "--dataset", "d", "--clip", "c",
                         "--out", "o.mp4"],
                        {"checkpoint": "m.pt", "predictor": "p.pt", "dataset": "d", "clip": "c", "out": "o.mp4"})}


def _tree(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.Action]]:
    """(command path, action) for every option of every (sub)command."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _tree(sub, f"{path} {name}".strip())
        else:
            found.append((path, action))
    return found


def _command(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.mark.parametrize("command", sorted(COMMAND_MODELS))
def test_an_option_filling_a_field_shows_the_fields_description_and_default_and_leaves_the_default_to_it(command):
    model, parser = COMMAND_MODELS[command], build_parser()
    checked = 0
    for action in _command(parser, command)._actions:
        field = model.model_fields.get(action.dest)
        if field is None or field.description is None:
            continue
        checked += 1
        assert field.description in action.help, (command, action.option_strings)
        assert action.default is None, (command, action.option_strings)  # not given: the model's default stands
        default = field.get_default(call_default_factory=True)
        shown = isinstance(default, (int, str)) and not isinstance(default, bool) and "default" not in field.description
        if shown and not action.required:  # (a command may require what a form defaults: train's --dataset)
            assert action.help.endswith(f"(default {default})"), (command, action.help)
        if field.is_required():
            assert action.required, (command, action.option_strings)
    assert checked >= 2
    args, values = REQUIRED[command]
    parsed = parser.parse_args([command, *args])
    assert form(parsed, model) == model(**values)  # every default in force is the model's own


def test_defaults_shown_are_the_fields_own():
    parser = build_parser()
    synth = {a.dest: a.help for a in _command(parser, "synth")._actions}
    assert synth["clips"].endswith(f"(default {SynthParams.model_fields['clips'].default})")
    assert synth["size"].endswith("(default {}x{})".format(*SynthParams.model_fields["size"].default))
    first_frame = next(a for a in _command(parser, "synthesize")._actions if a.dest == "first_frame")
    assert first_frame.choices == ["real", "zeros", "single"] and first_frame.help.endswith("(default zeros)")
    workers = next(a for a in _command(parser, "preprocess")._actions if a.dest == "workers")
    assert workers.option_strings == ["--dask-workers", "--workers"]
    assert workers.help == f"{PreprocessParams.model_fields['workers'].description} (default 2)"


def test_a_generated_option_follows_its_field():
    class Form(BaseModel):
        count: int = Field(default=3, description="how many")
        kind: Literal["a", "b"] = Field(default="a", description="which")
        names: list[str] | None = Field(default=None, description="only these")
        size: tuple[int, int] = Field(default=(64, 32), description="(width, height)")
        loud: bool = Field(default=False, description="say more")
        target: str = Field(description="where")

    parser = argparse.ArgumentParser()
    for name in ("count", "kind", "names", "loud", "target"):
        field_option(parser, Form, name)
    field_option(parser, Form, "size", type=size_arg("--size"))
    helps = {a.dest: a for a in parser._actions}
    assert helps["count"].help == "how many (default 3)" and helps["count"].type is int
    assert helps["kind"].choices == ["a", "b"] and helps["kind"].help == "which (default a)"
    assert helps["names"].help == "comma-separated; only these"
    assert helps["size"].help == "(width, height) (default 64x32)"
    assert helps["loud"].help == "say more" and helps["target"].required and helps["target"].help == "where"
    assert form(parser.parse_args(["--target", "t"]), Form) == Form(target="t")
    given = parser.parse_args(["--target", "t", "--count", "5", "--kind", "b", "--names", "x, y", "--size", "32x16",
                               "--loud"])
    assert form(given, Form) == Form(target="t", count=5, kind="b", names=["x", "y"], size=(32, 16), loud=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--target", "t", "--kind", "c"])


#: shared option -> the parent parser that declares it
SHARED = {"--runs-root": RUNS_ROOT, "--weights-dir": WEIGHTS_DIR, "--ray-address": RAY_ADDRESS,
          "--dask-address": DASK_ADDRESS, "--dask-workers": DASK_WORKERS, "--metrics": METRICS, "--set": CONFIG_SET,
          "--db-url": REGISTRY}
#: (option, command) whose option of that name is another declaration, on purpose
OTHER = {("--runs-root", "synthesize"): LOOKUP_RUNS_ROOT, ("--runs-root", "predict"): LOOKUP_RUNS_ROOT,
         ("--weights-dir", "weights import"): WEIGHTS_DIR_AGAIN,  # not given: `weights --weights-dir` stands
         ("--runs-root", "reference-model"): None,  # ReferenceParams.runs_root: its runs go apart from the demo's
         ("--metrics", "reference-model"): None,  # ReferenceParams.metrics: the card's
         ("--db-url", "review"): None}  # the review app's votes database, said in its own words


def _declared(parent: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parent._actions if flag in a.option_strings)


def test_shared_options_are_one_declaration_each():
    uses: dict[str, list[str]] = {flag: [] for flag in SHARED}
    for command, action in _tree(build_parser()):
        for flag in set(action.option_strings) & set(SHARED):
            if (flag, command) in OTHER:
                parent = OTHER[flag, command]
                assert parent is None or action is _declared(parent, flag), (flag, command)
                continue
            assert action is _declared(SHARED[flag], flag), (flag, command)  # the same object: the same help, default
            uses[flag].append(command)
    assert {flag: len(commands) >= 2 for flag, commands in uses.items()} == dict.fromkeys(SHARED, True), uses
    assert set(uses["--runs-root"]) >= {"train", "evaluate", "rebuild", "train-predictor", "review", "study create",
                                        "models list"}
    assert set(uses["--dask-workers"]) == {"preprocess", "rebuild"}


def test_the_shared_root_options_say_what_the_models_fields_say():
    """The shared texts are the fields' (one place to change both): a form's roots read as the CLI's."""
    runs_root, weights_dir = _declared(RUNS_ROOT, "--runs-root"), _declared(WEIGHTS_DIR, "--weights-dir")
    for model in (TrainParams, EvaluateParams, TrainPredictorParams):
        assert model.model_fields["runs_root"].description == runs_root.help
    for model in (TrainParams, EvaluateParams, PreprocessParams, ReferenceParams):
        assert model.model_fields["weights_dir"].description == weights_dir.help
    assert TrainParams.model_fields["ray_address"].description in _declared(RAY_ADDRESS, "--ray-address").help
    lookup = _declared(LOOKUP_RUNS_ROOT, "--runs-root").help
    assert lookup == SynthesizeParams.model_fields["runs_root"].description
    assert lookup == PredictParams.model_fields["runs_root"].description
