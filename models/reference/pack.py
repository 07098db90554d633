"""A trained run's model file → the shipped form: generator and discriminators in fp16, no optimizer state.

fp16 halves the file (the demo presets: 4–9 MB) and keeps fine-tuning possible (``--init-from`` loads the
discriminators too); loading casts the weights back to the modules' float32. The card's held-out scores
are measured on this packed file, never on the float32 run, so they are what a user of the file gets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from models.metrics.fidelity import fidelity
from models.metrics.report import FIRST_FRAME, scored
from models.reference.card import MAX_MODEL_BYTES
from models.synthesis import clip_stages, synthesize_frames
from models.vid2vid.checkpoint import (CHECKPOINT_FORMAT, REFERENCE_FORMAT, CheckpointError, load_checkpoint,
                                       load_generator, save_checkpoint)
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout


def _half(state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    if state is None:
        return None
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def pack_model(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[str]:
    """Write ``out`` from a trainer checkpoint (a run's model.pt); returns the parts it holds. Refuses a file
    over the shipped size limit (nothing is left at ``out`` then)."""
    state = load_checkpoint(source)
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source} is not a trained run's model file ({state['format']}): only a run of ours "
                              f"is packed into a reference model")
    payload = {"format": REFERENCE_FORMAT, "config": state["config"], "epoch": state.get("epoch", 0),
               "step": state.get("step", 0), "generator": _half(state["generator"]),
               "encoder": _half(state.get("encoder")), "discriminators": _half(state.get("discriminators"))}
    if state.get("gmm") is not None:
        payload["gmm"] = state["gmm"]
    path = save_checkpoint(out, payload)
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        path.unlink()
        raise CheckpointError(f"packed model {path} would be {size / 2**20:.1f} MiB, over the shipped limit "
                              f"{MAX_MODEL_BYTES / 2**20:.0f} MiB: use a smaller preset")
    return [part for part in ("generator", "encoder", "discriminators") if payload.get(part) is not None]


def heldout_psnr(model: str | os.PathLike[str], layout: DatasetLayout, clips: list[str]) -> tuple[float, int]:
    """(mean PSNR over ``clips``, frames scored) of ``model`` under the evaluation's protocol — the clip's real
    frame 0 given, frames 1..T-1 scored, per-clip means averaged — computed in memory, without the evaluation
    flow's video files: the independent check of a card's number."""
    generator, config = load_generator(model)
    size = (config.input.width, config.input.height)
    scores = []
    with torch.no_grad():
        for clip in clips:
            frames = list(iter_clip_frames(layout, clip, clip_stages(config), size))
            fake = np.stack(list(synthesize_frames(generator, frames, first_frame=FIRST_FRAME)))
            scores.append(fidelity(scored(fake), scored(np.stack([f["rgb"] for f in frames]))))
    return float(np.mean([s.psnr for s in scores])), sum(s.frames for s in scores)
