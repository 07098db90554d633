"""Recursive prediction of any number of future label maps with bounded memory.

The history is a ``deque(maxlen=K)`` of :class:`MapFrame`: each prediction is pushed in and the oldest
frame drops out, and nothing is recorded for autograd, so memory does not grow with the horizon.
Three forecasters share one interface: the trained predictor and the two baselines that need no
training (copy the last map; extrapolate the last flow at constant velocity).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from models.vid2vid.batch import instance_boundaries, one_hot_labels
from models.vid2vid.warp import forward_to_backward_flow, warp

from .config import PredictorConfig
from .network import MaskPredictor, extrapolate_flow


@dataclass
class MapFrame:
    """One frame's maps on the predictor's grid (batch dim first).

    ``flow`` is the backward flow from this frame to the previous one (zeros for a clip's first frame).
    A predicted frame also holds its class probabilities (the soft map that is carried on, so motion
    of less than a pixel per frame still adds up) and ``to_anchor``, the composed backward flow to the
    last observed frame, from which instance ids (and, for the baselines, pixels) are carried in one warp.
    """

    semantic: torch.Tensor  # (B, H, W) int64 train ids, ignore_label where unknown
    instance: torch.Tensor | None  # (B, H, W) int64, train_id * 1000 + k for things, 0 for stuff
    flow: torch.Tensor  # (B, 2, H, W) float, pixels
    probs: torch.Tensor | None = None  # (B, C, H, W) for predicted frames
    to_anchor: torch.Tensor | None = None  # (B, 2, H, W) for predicted frames; None: an observed frame


def warp_ids(ids: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour backward warp of an id map (B, H, W): integer flows sample pixel centres exactly."""
    return warp(ids.float().unsqueeze(1), flow.round())[:, 0].round().long()


def carry_instances(semantic: torch.Tensor, instance: torch.Tensor, flow: torch.Tensor,
                    foreground: Sequence[int]) -> torch.Tensor:
    """An observed instance map moved by ``flow``, made consistent with the new semantic map: stuff
    pixels get 0, thing pixels whose carried instance is of another class get an unnamed id (class * 1000)."""
    carried = warp_ids(instance, flow)
    is_thing = torch.zeros_like(semantic, dtype=torch.bool)
    for cls in foreground:
        is_thing |= semantic == cls
    agrees = torch.div(carried, 1000, rounding_mode="floor") == semantic
    return torch.where(is_thing, torch.where(agrees, carried, semantic * 1000), torch.zeros_like(carried))


class History:
    """The last K frames, and the network inputs they make (padded at the start by repeating the oldest).

    ``anchor`` is the last observed frame: predictions are carried from it.
    """

    def __init__(self, config: PredictorConfig) -> None:
        self.config = config
        self.frames: deque[MapFrame] = deque(maxlen=config.history)
        self.anchor: MapFrame | None = None

    def push(self, frame: MapFrame) -> None:
        self.frames.append(frame)
        if frame.to_anchor is None:
            self.anchor = frame

    @property
    def last(self) -> MapFrame:
        return self.frames[-1]

    def soft(self, frame: MapFrame) -> torch.Tensor:
        inp = self.config.input
        return frame.probs if frame.probs is not None else one_hot_labels(frame.semantic, inp.num_classes, inp.ignore_label)

    def to_anchor(self, flow: torch.Tensor) -> torch.Tensor:
        """The backward flow from a new frame (whose flow to the last frame is ``flow``) to the anchor."""
        previous = self.last.to_anchor
        return flow if previous is None else flow + warp(previous, flow)

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(labels (B, K, C, H, W), boundaries (B, K, 1, H, W) or None, flows (B, K-1, 2, H, W))."""
        if not self.frames:
            raise ValueError("prediction needs at least one observed frame")
        pad = self.config.history - len(self.frames)
        frames = [self.frames[0]] * pad + list(self.frames)
        labels = torch.stack([self.soft(f) for f in frames], 1)
        boundaries = None
        if self.config.input.use_instance:
            boundaries = torch.stack([instance_boundaries(_instance_or_zeros(f)) for f in frames], 1)
        flows = torch.stack([torch.zeros_like(f.flow) if i <= pad else f.flow for i, f in enumerate(frames)][1:], 1)
        return labels, boundaries, flows


def _instance_or_zeros(frame: MapFrame) -> torch.Tensor:
    return frame.instance if frame.instance is not None else torch.zeros_like(frame.semantic)


def next_frame(history: History, probs: torch.Tensor, flow: torch.Tensor) -> MapFrame:
    """The predicted frame from its class probabilities and its backward flow to the last frame."""
    to_anchor = history.to_anchor(flow)
    semantic = probs.argmax(1)
    anchor = history.anchor
    instance = None
    if anchor is not None and anchor.instance is not None:
        instance = carry_instances(semantic, anchor.instance, to_anchor, history.config.input.foreground_classes)
    return MapFrame(semantic, instance, flow, probs, to_anchor)


class Forecaster(Protocol):
    name: str

    def next(self, history: History) -> MapFrame: ...


class PredictorForecaster:
    """The trained mask predictor: p_{t+1} carried on, its argmax as the map."""

    name = "predictor"

    def __init__(self, model: MaskPredictor) -> None:
        self.model = model.eval()

    @torch.inference_mode()
    def next(self, history: History) -> MapFrame:
        out = self.model(*history.inputs())
        return next_frame(history, out["probs"], out["flow"])


class CopyLastForecaster:
    """Baseline: the future looks like the last observed frame."""

    name = "copy last frame"

    def next(self, history: History) -> MapFrame:
        return next_frame(history, history.soft(history.last), torch.zeros_like(history.last.flow))


class ExtrapolateFlowForecaster:
    """Baseline: every pixel keeps moving with the last flow (constant velocity), no learning."""

    name = "extrapolate last flow"

    def next(self, history: History) -> MapFrame:
        flow = extrapolate_flow(history.last.flow)
        return next_frame(history, warp(history.soft(history.last), flow), flow)


def observed_frames(frames: Iterable[dict[str, np.ndarray]]) -> Iterator[MapFrame]:
    """Dataset frames (``semantic``, ``instance``, forward ``flow`` t -> t+1) as MapFrames.

    Frame t's backward flow comes from frame t-1's forward flow, so an observed frame never uses the
    flow that points into the unobserved future.
    """
    previous_forward: torch.Tensor | None = None
    for frame in frames:
        semantic = torch.from_numpy(frame["semantic"].astype(np.int64))[None]
        instance = torch.from_numpy(frame["instance"].astype(np.int64))[None] if "instance" in frame else None
        if previous_forward is None:
            flow = torch.zeros(1, 2, *semantic.shape[-2:])
        else:
            flow = forward_to_backward_flow(previous_forward)
        yield MapFrame(semantic, instance, flow)
        previous_forward = torch.from_numpy(np.asarray(frame["flow"], np.float32))[None] if "flow" in frame else None


@torch.inference_mode()
def predict_future(forecaster: Forecaster, history: History, n_future: int) -> Iterator[MapFrame]:
    """``n_future`` predicted frames, each fed back as the newest history frame (bounded memory)."""
    for _ in range(n_future):
        frame = forecaster.next(history)
        history.push(frame)
        yield frame
