"""Checkpoint files: one ``torch.save``d dict of tensors, numbers, strings and the config as plain JSON-able
data, so ``torch.load(weights_only=True)`` reads it (no pickled classes). Every problem with a file is a
``CheckpointError`` that names the file and says what is wrong.

Layout (``Vid2VidTrainer.state_dict()`` plus optional ``gmm``)::

    format "vid2vid-trainer/1", config {... input.sources: the declared inputs ...}, epoch, step,
    generator {...}, encoder {...}|None,
    discriminators {...}, optimizer_G {...}, optimizer_D {...}, rng ByteTensor, gmm {...}|absent

An imported official model (``vid2vid import-official``) is ``format "vid2vid-imported/1"``, config, epoch 0,
step 0, generator, single_frame {config, generator}|None, discriminators {...}|None|absent (files imported
before discriminators were), source {checkpoint_dir, files: {name: sha256}}.

Either kind starts a new run with ``--init-from`` (weights only: :func:`validate_init_from`); only a trainer
checkpoint continues one (``--resume-from``: :func:`validate_checkpoint`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from models.safe_load import torch_load_safely

from .config import ModelConfig
from .discriminators import Discriminators
from .encoder import FeatureEncoder
from .generator import Vid2VidGenerator
from .multimodal import ClassFeatureGMM
from .trainer import CHECKPOINT_FORMAT, Vid2VidTrainer

#: NVIDIA's released generators imported by ``vid2vid import-official`` (no optimizer or discriminator state)
IMPORTED_FORMAT = "vid2vid-imported/1"
#: a shipped reference model (reference_models/<name>/model.pt): generator and discriminators in fp16, no
#: optimizer state (models/reference/pack.py); loading casts them to the modules' float32
REFERENCE_FORMAT = "vid2vid-reference/1"
#: what a model file may be: a trained checkpoint, an imported official generator, or a shipped reference model
MODEL_FORMATS = (CHECKPOINT_FORMAT, IMPORTED_FORMAT, REFERENCE_FORMAT)

REQUIRED_KEYS = ("format", "config", "generator")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    pass


def save_checkpoint(
    path: str | os.PathLike[str], state: dict[str, Any] | Vid2VidTrainer, *, gmm: ClassFeatureGMM | None = None
) -> Path:
    """Atomically write a checkpoint (temp file in the same folder, fsync, ``os.replace``)."""
    payload = state.state_dict() if isinstance(state, Vid2VidTrainer) else dict(state)
    if gmm is not None:
        payload["gmm"] = gmm.state_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _model_file(path: str | os.PathLike[str]) -> Path:
    """A path as given, or a shipped model's file (``reference:<name>``) once its sha256 matches its card."""
    from models.reference.registry import resolve_model_file  # the weights registry: only when a name is given

    return resolve_model_file(path) if str(path).startswith("reference:") else Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict, checked to be a vid2vid checkpoint; otherwise a ``CheckpointError``. ``path`` may
    name a shipped reference model (``reference:street``)."""
    path = _model_file(path)
    if not path.exists():
        raise MissingCheckpointError(f"checkpoint {path} does not exist")
    state = torch_load_safely(path, CheckpointError, "checkpoint", map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a vid2vid checkpoint dict")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a vid2vid checkpoint: it lacks {missing} "
                              f"(has {sorted(state)[:8]})")
    if state["format"] not in MODEL_FORMATS:
        raise CheckpointError(f"checkpoint {path} has format {state['format']!r}; expected one of {MODEL_FORMATS}")
    return state


def _config(path: str | os.PathLike[str], state: dict[str, Any]) -> ModelConfig:
    try:
        return ModelConfig.model_validate(state["config"])
    except ValidationError as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid model config: {exc.errors()[0]['msg']} "
                              f"at {'.'.join(str(p) for p in exc.errors()[0]['loc'])}") from None


def _load_module(path: str | os.PathLike[str], module: torch.nn.Module, state: Any, part: str) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, AttributeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path}: its {part} weights do not fit its own config ({first[:300]})") from None


def validate_checkpoint(path: str | os.PathLike[str], model: ModelConfig | dict[str, Any] | None = None) -> Path:
    """The absolute path of a usable checkpoint, checked on the driver (before Ray or any worker sees it).

    With ``model`` (a ModelConfig, or one as plain data), the checkpoint must have been written for that config.
    """
    absolute = _model_file(path).expanduser().resolve()
    state = load_checkpoint(absolute)
    if state["format"] != CHECKPOINT_FORMAT:
        kind = "a shipped reference model" if state["format"] == REFERENCE_FORMAT else "an imported model"
        raise CheckpointError(f"checkpoint {absolute} is {kind} ({state['format']}) with no optimizer state "
                              f"or step to continue: start a new run from its weights with --init-from")
    config = model_config(state, absolute)
    if model is not None and config != ModelConfig.model_validate(model):
        raise CheckpointError(f"checkpoint {absolute} was written for model config {config.name!r}, which differs "
                              f"from this run's config: resume only with the config it was trained with")
    return absolute


def _shape_differences(part: str, have: dict[str, Any], want: dict[str, torch.Tensor]) -> list[str]:
    """Keys and shapes of a file's state dict ``have`` against the modules ``want`` (first ones first)."""
    missing = [k for k in want if k not in have]
    unknown = [k for k in have if k not in want]
    shapes = [f"{k}: file {tuple(have[k].shape)}, config {tuple(v.shape)}" for k, v in want.items()
              if k in have and tuple(getattr(have[k], "shape", ())) != tuple(v.shape)]
    found = []
    if missing:
        found.append(f"{part} keys missing from the file ({len(missing)}): {', '.join(missing[:3])}")
    if unknown:
        found.append(f"{part} keys the config lacks ({len(unknown)}): {', '.join(unknown[:3])}")
    if shapes:
        found.append(f"{part} shapes ({len(shapes)}): {'; '.join(shapes[:3])}")
    return found


def _config_notes(file_config: ModelConfig, run_config: ModelConfig) -> list[str]:
    """What the file's model computes differently from this run's config beyond its weights' shapes
    (e.g. an imported model's official composition): reported, not refused."""
    notes = []
    a, b = file_config.to_dict(), run_config.to_dict()
    for section in ("input", "generator", "discriminator", "multimodal"):
        for key in sorted(set(a[section]) | set(b[section])):
            if a[section].get(key) != b[section].get(key):
                notes.append(f"{section}.{key}: file {a[section].get(key)!r}, run {b[section].get(key)!r}")
    return notes


def validate_init_from(path: str | os.PathLike[str], model: ModelConfig | dict[str, Any]) -> tuple[Path, list[str], list[str]]:
    """Check on the driver that a model file (ours or imported) can start a run of ``model`` (a ModelConfig, or
    one as plain data): it exists, is a vid2vid model file, and its generator (encoder, discriminators when it has
    them) have exactly the keys and shapes the run's config builds. Returns (absolute path, the parts it will
    initialise, notes on config fields that differ without changing shapes). ``path`` may name a shipped
    reference model (``reference:street``), verified against its card's sha256 first."""
    absolute = _model_file(path).expanduser().resolve()
    state = load_checkpoint(absolute)
    file_config = model_config(state, absolute)
    config = ModelConfig.model_validate(model)
    with torch.device("meta"):  # shapes only: no memory for a street-size model on the driver
        expected = {"generator": Vid2VidGenerator(config).state_dict(), "discriminators": Discriminators(config).state_dict()}
        if config.multimodal.enabled:
            expected["encoder"] = FeatureEncoder(config).state_dict()
    problems, parts = [], []
    for part in ("generator", "encoder", "discriminators"):
        have = state.get(part)
        if have is None:
            if part == "generator":
                problems.append("it holds no generator weights")
            continue
        if part not in expected:
            problems.append(f"it holds {part} weights (multimodal) that this run's config has none of")
            continue
        if not isinstance(have, dict):
            problems.append(f"its {part} entry is not a state dict")
            continue
        differences = _shape_differences(part, have, expected[part])
        problems += differences
        parts.append(part)
    if problems:
        raise CheckpointError(f"--init-from {absolute} does not fit this run's model config {config.name!r} "
                              f"(file: {file_config.name!r}): " + "; ".join(problems[:4]))
    return absolute, parts, _config_notes(file_config, config)


def load_discriminators(path: str | os.PathLike[str]) -> Discriminators | None:
    """D_I and D_V from a model file (a trainer checkpoint, or an import that had them), else None."""
    state = load_checkpoint(path)
    if state.get("discriminators") is None:
        return None
    discriminators = Discriminators(model_config(state, path))
    _load_module(path, discriminators, state["discriminators"], "discriminator")
    return discriminators


def model_config(state: dict[str, Any], path: str | os.PathLike[str]) -> ModelConfig:
    """The checkpoint's own config, declared inputs included; a file from before inputs were declared
    (``input.num_classes/use_instance/extra_channels``) is refused by name, never guessed."""
    inputs = (state.get("config") or {}).get("input") or {}
    if "sources" not in inputs and {"num_classes", "use_instance", "extra_channels"} & set(inputs):
        raise CheckpointError(f"checkpoint {path} was written before model inputs were declared (input.num_classes/"
                              "use_instance/extra_channels, no input.sources): retrain it with a current preset")
    return _config(path, state)


def load_trainer(path: str | os.PathLike[str], **trainer_kwargs: Any) -> Vid2VidTrainer:
    """A trainer rebuilt from the checkpoint's own config, with every state restored (resume)."""
    state = load_checkpoint(path)
    trainer = Vid2VidTrainer(model_config(state, path), **trainer_kwargs)
    _load_module(path, trainer, state, "trainer")
    return trainer


def load_generator(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Vid2VidGenerator, ModelConfig]:
    """The generator alone (eval mode) for synthesis, and its config."""
    state = load_checkpoint(path)
    config = model_config(state, path)
    generator = Vid2VidGenerator(config)
    _load_module(path, generator, state["generator"], "generator")
    return generator.to(device).eval(), config


@dataclass(frozen=True)
class LoadedModel:
    """A model file read once for synthesis: what every clip of a run needs (the file is opened once per
    consumer, not once per clip and again per sampler)."""

    path: Path
    generator: Vid2VidGenerator  # eval mode
    config: ModelConfig
    gmm: ClassFeatureGMM | None  # a multimodal model's fitted per-class feature mixtures


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """``load_generator`` and the multimodal mixtures from one read of the file."""
    state = load_checkpoint(path)
    config = model_config(state, path)
    generator = Vid2VidGenerator(config)
    _load_module(path, generator, state["generator"], "generator")
    return LoadedModel(_model_file(path), generator.to(device).eval(), config, _gmm(path, state))


def _gmm(path: str | os.PathLike[str], state: dict[str, Any]) -> ClassFeatureGMM | None:
    try:
        return ClassFeatureGMM.from_state_dict(state["gmm"]) if state.get("gmm") is not None else None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its feature mixtures are unreadable ({exc})") from None


def load_multimodal(path: str | os.PathLike[str]) -> tuple[FeatureEncoder | None, ClassFeatureGMM | None]:
    """The feature encoder E and the fitted per-class mixtures, where the checkpoint has them."""
    return multimodal_parts(load_checkpoint(path), path)


def multimodal_parts(state: dict[str, Any], path: str | os.PathLike[str]) -> tuple[FeatureEncoder | None,
                                                                                    ClassFeatureGMM | None]:
    """``load_multimodal`` of a checkpoint already read (``state``, from ``path``)."""
    config = model_config(state, path)
    encoder = None
    if state.get("encoder") is not None:
        encoder = FeatureEncoder(config)
        _load_module(path, encoder, state["encoder"], "encoder")
        encoder.eval()
    return encoder, _gmm(path, state)
