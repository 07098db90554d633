"""Checkpoint files: one ``torch.save``d dict of tensors, numbers, strings and the config as plain JSON-able
data, so ``torch.load(weights_only=True)`` reads it (no pickled classes).

Layout (``Vid2VidTrainer.state_dict()`` plus optional ``gmm``)::

    format "vid2vid-trainer/1", config {... input.sources: the declared inputs ...}, epoch, step,
    generator {...}, encoder {...}|None,
    discriminators {...}, optimizer_G {...}, optimizer_D {...}, rng ByteTensor, gmm {...}|absent
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .encoder import FeatureEncoder
from .generator import Vid2VidGenerator
from .multimodal import ClassFeatureGMM
from .trainer import Vid2VidTrainer


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


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def model_config(state: dict[str, Any], path: str | os.PathLike[str]) -> ModelConfig:
    """The checkpoint's own config, declared inputs included; a file from before inputs were declared
    (``input.num_classes/use_instance/extra_channels``) is refused by name, never guessed."""
    inputs = (state.get("config") or {}).get("input") or {}
    if "sources" not in inputs and {"num_classes", "use_instance", "extra_channels"} & set(inputs):
        raise ValueError(f"{path} was written before model inputs were declared (input.num_classes/use_instance/"
                         "extra_channels, no input.sources): retrain it with a current preset")
    return ModelConfig.model_validate(state["config"])


def load_trainer(path: str | os.PathLike[str], **trainer_kwargs: Any) -> Vid2VidTrainer:
    """A trainer rebuilt from the checkpoint's own config, with every state restored (resume)."""
    state = load_checkpoint(path)
    trainer = Vid2VidTrainer(model_config(state, path), **trainer_kwargs)
    trainer.load_state_dict(state)
    return trainer


def load_generator(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Vid2VidGenerator, ModelConfig]:
    """The generator alone (eval mode) for synthesis, and its config."""
    state = load_checkpoint(path)
    config = model_config(state, path)
    generator = Vid2VidGenerator(config)
    generator.load_state_dict(state["generator"])
    return generator.to(device).eval(), config


def load_multimodal(path: str | os.PathLike[str]) -> tuple[FeatureEncoder | None, ClassFeatureGMM | None]:
    """The feature encoder E and the fitted per-class mixtures, where the checkpoint has them."""
    state = load_checkpoint(path)
    config = model_config(state, path)
    encoder = None
    if state.get("encoder") is not None:
        encoder = FeatureEncoder(config)
        encoder.load_state_dict(state["encoder"])
        encoder.eval()
    gmm = ClassFeatureGMM.from_state_dict(state["gmm"]) if state.get("gmm") is not None else None
    return encoder, gmm
