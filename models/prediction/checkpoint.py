"""Predictor checkpoints and telling checkpoint kinds apart.

A predictor checkpoint is the same kind of file as a vid2vid one (a ``torch.save``d dict of plain data,
written atomically) with ``format`` "mask-predictor/1" and ``kind`` "mask-predictor". Every loader here
checks the kind first, so a vid2vid model given where a predictor is expected (or the reverse) is an
error naming the file and what it holds, not a KeyError deep in ``load_state_dict``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from models.safe_load import torch_load_safely
from models.vid2vid.checkpoint import save_checkpoint
from models.vid2vid.trainer import CHECKPOINT_FORMAT as VID2VID_FORMAT

from .config import PredictorConfig
from .network import MaskPredictor
from .trainer import CHECKPOINT_FORMAT

KINDS = {CHECKPOINT_FORMAT: "mask predictor", VID2VID_FORMAT: "vid2vid model"}

__all__ = ["checkpoint_kind", "load_predictor", "read_state", "require_vid2vid", "save_checkpoint"]


def read_state(path: str | os.PathLike[str], role: str = "predictor") -> dict:
    """The checkpoint's dict, of any kind (the kind is checked by the callers); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{role} checkpoint {path} does not exist")
    state = torch_load_safely(path, ValueError, f"{role} checkpoint")
    if not isinstance(state, dict):
        raise ValueError(f"{role} checkpoint {path} is not a checkpoint dict")
    return state


def checkpoint_kind(path: str | os.PathLike[str], role: str = "the") -> str:
    """"mask predictor", "vid2vid model" or "unknown (format X)"."""
    fmt = read_state(path, role).get("format")
    return KINDS.get(fmt, f"unknown (format {fmt!r})")


def _expect(path: str | os.PathLike[str], state: dict, expected: str, flag: str) -> None:
    found = KINDS.get(state.get("format"), f"an unknown kind of checkpoint (format {state.get('format')!r})")
    if found != expected:
        hint = {"mask predictor": "--predictor", "vid2vid model": "--checkpoint"}.get(found)
        raise ValueError(f"{flag} {path} is a {found}, not a {expected}"
                         + (f"; pass it as {hint}" if hint and hint != flag else ""))


def load_predictor(path: str | os.PathLike[str], device: str | torch.device = "cpu", *,
                   flag: str = "--predictor") -> MaskPredictor:
    """The trained predictor (eval mode) with its config (``model.config``); ``flag`` names the input in errors."""
    state = read_state(path, "predictor")
    _expect(path, state, "mask predictor", flag)
    model = MaskPredictor(PredictorConfig.model_validate(state["config"]))
    model.load_state_dict(state["predictor"])
    return model.to(device).eval()


def require_vid2vid(path: str | os.PathLike[str]) -> None:
    """Raise the clear error when ``path`` is not a vid2vid model (e.g. a predictor passed as --checkpoint)."""
    _expect(path, read_state(path, "vid2vid"), "vid2vid model", "--checkpoint")
