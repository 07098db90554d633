"""Options declared once: the roots and clusters many commands share, and options generated from the fields of
the parameter model they fill, so a default or a description lives in one place (the model's field).

A shared option is a parent parser declared here; a command takes it with ``parents=[...]`` on ``add_parser``,
or with ``take(parser, ...)`` (the same step, at that point of its option list, so help keeps its order).
A field option (``field_option``) takes its help, type, choices and the default it shows from the pydantic
field; its parsed default is None, so an option not given leaves the model's own default in force, and
``form`` fills the model from the options named like its fields. The models come from flows/forms.py and
models/training/job.py, which import no Prefect, torch, Ray or Dask.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flows.forms import EvaluateSettings, PreprocessSettings, SynthesizeParams
from models.training.job import TrainSettings

M = TypeVar("M", bound=BaseModel)


# --- argument types ------------------------------------------------------------------------------------------
def size_arg(option: str, *, even: bool = False) -> Callable[[str], tuple[int, int]]:
    """An argparse type for ``WxH`` → (width, height), the one size convention of every parameter; the
    bounds (positive, even where codecs need it, at most the decoded-frame limit) are storage's rules."""

    def parse(text: str) -> tuple[int, int]:
        from storage.video import parse_size

        try:
            return parse_size(text, option, even=even)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def csv(text: str | None) -> list[str] | None:
    """``a,b`` → ["a", "b"]; empty → None (not given)."""
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


# --- options that fill a model's field --------------------------------------------------------------------
def _plain(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def _shown(value: object) -> str:
    """A default as the command line spells it."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def field_help(field: FieldInfo, *, required: bool = False) -> str | None:
    """The field's description, plus its default unless the description already names one."""
    if field.description is None:
        return None
    default = None if required or field.is_required() else field.get_default(call_default_factory=True)
    if default is None or isinstance(default, bool) or "default" in field.description:
        return field.description
    return f"{field.description} (default {_shown(default)})"


def field_option(parser: argparse.ArgumentParser, model: type[BaseModel], name: str, *flags: str,
                 **overrides: Any) -> argparse.Action:
    """``--flag`` filling ``model``'s field ``name``: help from its description (and default), the type from
    its annotation (a Literal gives the choices, a list is comma-separated, a bool is a switch), required when
    the field is; ``overrides`` are argparse's own keywords for what a field cannot say (a size's parser)."""
    field = model.model_fields[name]
    kind = _plain(field.annotation)
    origin = typing.get_origin(kind)
    spec: dict[str, Any] = {"dest": name, "default": None}
    if kind is bool:
        spec["action"] = "store_true"
    elif origin is typing.Literal:
        spec["choices"] = list(typing.get_args(kind))
    elif origin is list:
        spec["type"] = csv
    elif kind in (int, float):
        spec["type"] = kind
    if field.is_required():
        spec["required"] = True
    spec.update(overrides)
    help_text = field_help(field, required=spec.get("required", False))
    if origin is list and help_text:
        help_text = f"comma-separated; {help_text}"
    return parser.add_argument(*(flags or (f"--{name.replace('_', '-')}",)), help=help_text, **spec)


def field_options(parser: argparse.ArgumentParser, model: type[BaseModel], *names: str) -> None:
    """Several fields of ``model`` as options named after them (``run_name`` → ``--run-name``)."""
    for name in names:
        field_option(parser, model, name)


def given(args: argparse.Namespace, model: type[BaseModel], **values: object) -> dict[str, object]:
    """The parsed options named like ``model``'s fields, and ``values``: those given (not None)."""
    options = {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}
    return {**options, **{k: v for k, v in values.items() if v is not None}}


def form(args: argparse.Namespace, model: type[M], **values: object) -> M:
    """``model`` filled from the options given (``given``); the rest keep the model's defaults."""
    return model(**given(args, model, **values))


#: TrainSettings fields as options: field -> the option's names (the first is the one help shows)
TRAINING_OPTIONS = {"workers": ("--train-workers", "--workers"), "gpus_per_worker": ("--gpus-per-worker",),
                    "max_steps": ("--max-steps",), "epochs": ("--epochs",), "checkpoint_every": ("--checkpoint-every",)}


def add_training_options(parser: argparse.ArgumentParser, *fields: str) -> None:
    """Training settings as options (``TrainSettings``, models/training/job.py), named as ``TRAINING_OPTIONS``."""
    for name in fields or tuple(TRAINING_OPTIONS):
        field_option(parser, TrainSettings, name, *TRAINING_OPTIONS[name])


# --- shared options, one parent parser each ------------------------------------------------------------------
def take(parser: argparse.ArgumentParser, *parents: argparse.ArgumentParser) -> None:
    """The options of shared ``parents`` on ``parser`` from here on: argparse's own ``parents=`` step, which would
    list them before the command's own options."""
    for parent in parents:
        parser._add_container_actions(parent)


def _parent(*parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False, parents=list(parents))


RUNS_ROOT_HELP = "default: $VID2VID_RUNS_ROOT or ./runs"
WEIGHTS_DIR_HELP = "default: $VID2VID_WEIGHTS_DIR or ./weights"

#: where runs are read and written
RUNS_ROOT = _parent()
RUNS_ROOT.add_argument("--runs-root", default=None, help=RUNS_ROOT_HELP)
#: where a registry reference (DATASET/CONFIG@champion) given as a model is looked up
LOOKUP_RUNS_ROOT = _parent()
field_option(LOOKUP_RUNS_ROOT, SynthesizeParams, "runs_root")
#: the runs root and the registry's database (`models`, `study`)
REGISTRY = _parent(RUNS_ROOT)
REGISTRY.add_argument("--db-url", default=None, help="default: $VID2VID_REVIEW_DB_URL or SQLite under the runs root")
#: the pretrained weights folder; WEIGHTS_DIR_AGAIN is for a nested command, where not given keeps the outer value
WEIGHTS_DIR, WEIGHTS_DIR_AGAIN = _parent(), _parent()
WEIGHTS_DIR.add_argument("--weights-dir", default=None, help=WEIGHTS_DIR_HELP)
WEIGHTS_DIR_AGAIN.add_argument("--weights-dir", default=argparse.SUPPRESS, help=WEIGHTS_DIR_HELP)
#: an existing Ray cluster (training)
RAY_ADDRESS = _parent()
RAY_ADDRESS.add_argument("--ray-address", default=None, help="an existing Ray cluster, or its job endpoint "
                                                            f"({TrainSettings.model_fields['ray_address'].description})")
#: the preprocessing cluster: an existing Dask scheduler, or how many local workers
DASK_ADDRESS, DASK_WORKERS = _parent(), _parent()
field_option(DASK_ADDRESS, PreprocessSettings, "dask_address", "--dask-address")
field_option(DASK_WORKERS, PreprocessSettings, "workers", "--dask-workers", "--workers")
#: which metrics an evaluation scores
METRICS = _parent()
field_option(METRICS, EvaluateSettings, "metrics", "--metrics")
#: model config fields on top of --config
CONFIG_SET = _parent()
CONFIG_SET.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a model config field on top of --config, by dotted name, the value read as YAML "
                             "(e.g. --set train.lr=0.0001 --set generator.n_prev=1); checked by the config model")


def config_set(args: argparse.Namespace) -> dict[str, object] | None:
    """``--set`` items as the parameters' ``config_set`` (None when none was given)."""
    from models.vid2vid.config import parse_settings

    return parse_settings(args.set) or None


def backend_args(items: list[str]) -> dict[str, dict[str, str]]:
    """``--backend STAGE=NAME`` or ``STAGE=NAME:key=value,key=value`` → backend settings per stage (validated by
    the model)."""
    backends: dict[str, dict[str, str]] = {}
    for item in items:
        stage, sep, spec = item.partition("=")
        if not sep or not spec:
            raise ValueError(f"--backend expects STAGE=NAME[:key=value,...], got {item!r}")
        name, _, options = spec.partition(":")
        settings = {"backend": name}
        for option in filter(None, options.split(",")):
            key, eq, value = option.partition("=")
            if not eq:
                raise ValueError(f"--backend option {option!r} is not key=value")
            settings[key] = value
        backends[stage.strip()] = settings
    return backends
