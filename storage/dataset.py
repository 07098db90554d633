"""The training dataset: windows of T consecutive frames read straight from the stage shards.

Samples follow the batch contract of ``models/vid2vid/batch.py`` (without the batch dimension), so a
plain ``DataLoader`` produces what the trainer consumes. Each Ray worker builds this dataset with its
own ``rank``/``world_size`` and reads only its share of the windows: no data goes through the driver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from storage.clip_reader import iter_clip_frames
from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.shards import ShardReader, read_meta



def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """Stacked payloads of one stage -> the batch contract's tensor: (T, H, W) label maps stay integer
    ids (int64); (T, H, W, C) uint8 pictures become (T, C, H, W) floats in [-1, 1] (float payloads, e.g.
    distance maps, are taken as they are)."""
    if frames.ndim == 3:
        return torch.from_numpy(frames.astype(np.int64))
    if frames.ndim == 4:
        pictures = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        return pictures.float().div(127.5).sub(1.0) if frames.dtype == np.uint8 else pictures.float()
    raise StorageError(f"stage payloads must be (T, H, W) ids or (T, H, W, C) pictures, got {frames.shape}")


def clip_batches(layout: DatasetLayout, clip_id: str, stages: Sequence[str], size: tuple[int, int] | None = None,
                 chunk: int = 8, limit: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """A clip's frames as batch-contract tensors, ``chunk`` frames at a time: ``image`` (N, 3, H, W) and
    each of ``stages`` (ids or renderings), resized to ``size`` (W, H); memory bounded by ``chunk``."""
    frames: list[dict[str, np.ndarray]] = []
    for frame in iter_clip_frames(layout, clip_id, ("rgb", *stages), size, limit):
        frames.append(frame)
        if len(frames) == chunk:
            yield _stacked(frames, stages)
            frames = []
    if frames:
        yield _stacked(frames, stages)


def _stacked(frames: list[dict[str, np.ndarray]], stages: Sequence[str]) -> dict[str, torch.Tensor]:
    batch = {"image": frames_tensor(np.stack([f["rgb"] for f in frames]))}
    batch.update({stage: frames_tensor(np.stack([f[stage] for f in frames])) for stage in stages})
    return batch


def missing_stage_shards(layout: DatasetLayout, stages: Sequence[str], split: str | None = "train",
                         clip_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
    """{stage: clip ids without its shard} over the usable clips of a split (empty: nothing missing)."""
    records = [r for r in read_manifest(layout) if r.status == "ok" and (split is None or r.split == split)
               and (clip_ids is None or r.clip_id in clip_ids)]
    missing = {stage: [r.clip_id for r in records if not layout.shard_path(stage, r.clip_id).is_file()]
               for stage in stages}
    return {stage: clips for stage, clips in missing.items() if clips}


def require_stage_shards(layout: DatasetLayout, stages: Sequence[str], split: str | None = "train",
                         needed_by: str = "the model reads", clip_ids: Sequence[str] | None = None) -> None:
    """Raise a StorageError naming every stage whose shards are missing, before any work starts."""
    missing = missing_stage_shards(layout, stages, split, clip_ids)
    if missing:
        parts = "; ".join(f"stage {stage!r} has none for {len(clips)} clip(s) ({', '.join(clips[:3])}"
                          f"{', ...' if len(clips) > 3 else ''})" for stage, clips in missing.items())
        raise StorageError(f"dataset {layout.dataset!r} lacks shards that {needed_by}: {parts}. Run `vid2vid "
                           f"preprocess --dataset {layout.dataset} --stages {','.join(missing)}` first")


#: what a semantic/instance shard holds when its footer does not say: every backend that wrote shards before
#: label spaces were recorded wrote Cityscapes train ids
DEFAULT_LABEL_SPACE = "cityscapes_train_ids"


def shard_label_space(meta_extra: dict) -> str:
    return str(meta_extra.get("label_space") or DEFAULT_LABEL_SPACE)


def require_label_spaces(layout: DatasetLayout, expected: dict[str, str], split: str | None = "train",
                         needed_by: str = "the model reads", clip_ids: Sequence[str] | None = None) -> None:
    """Raise a StorageError when a stage's shards hold ids of another label space than the model declares
    (``{stage: label space}``), e.g. Cityscapes label ids for a train-id model: one-hot channels would mean
    other classes and nothing would fail. Reads only the shard footers."""
    if not expected:
        return
    records = [r for r in read_manifest(layout) if r.status == "ok" and (split is None or r.split == split)
               and (clip_ids is None or r.clip_id in clip_ids)]
    for stage, want in expected.items():
        wrong: dict[str, list[str]] = {}
        for record in records:
            meta = read_meta(layout.shard_path(stage, record.clip_id))
            if meta is not None and (have := shard_label_space(meta.extra)) != want:
                wrong.setdefault(have, []).append(record.clip_id)
        for have, clips in wrong.items():
            how = (f"--backend {stage}=cityscapes:import_dir=DIR" if want == "cityscapes_label_ids" else
                   f"a computed {stage} backend, e.g. --backend {stage}=mmseg" if stage == "semantic" else
                   f"a computed {stage} backend")
            raise StorageError(
                f"{needed_by} {stage!r} as {want}, but dataset {layout.dataset!r} holds {have} there for "
                f"{len(clips)} clip(s) ({', '.join(clips[:3])}{', ...' if len(clips) > 3 else ''}): use a model "
                f"declaring {have}, or preprocess the stage into {want} ({how})")


@dataclass(frozen=True)
class Window:
    clip_id: str
    start: int


class ClipWindowDataset(Dataset):
    """Windows of ``n_frames`` frames from the clips of one split, with the stages the model needs.

    ``stages`` names the stages to read besides rgb (``ModelConfig.data_stages`` and ``flow``); each
    becomes the batch key of its name. A clip that lacks a requested stage is an error naming the stage.
    """

    def __init__(
        self,
        layout: DatasetLayout,
        n_frames: int,
        *,
        split: str | None = "train",
        stages: Sequence[str] = ("semantic", "instance", "flow"),
        stride: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        clip_ids: Sequence[str] | None = None,
    ) -> None:
        if "rgb" in stages:
            raise ValueError("rgb is always read (the batch's 'image'); list only the other stages")
        self.layout, self.n_frames, self.stages = layout, n_frames, tuple(stages)
        records = [r for r in read_manifest(layout) if r.status == "ok" and (split is None or r.split == split)]
        if clip_ids is not None:
            records = [r for r in records if r.clip_id in set(clip_ids)]
        records = sorted(records, key=lambda r: r.clip_id)
        if not records:
            raise StorageError(f"dataset {layout.dataset!r} has no usable {split or 'any'}-split clips "
                               f"(manifest: {layout.manifest_path})")
        require_stage_shards(layout, ("rgb", *self.stages), split, "training reads", [r.clip_id for r in records])
        step = stride or n_frames
        windows = [Window(r.clip_id, s) for r in records for s in range(0, r.n_frames - n_frames + 1, step)]
        if not windows:
            raise StorageError(f"no {n_frames}-frame training window in the {len(records)} clip(s) of {layout.dataset!r}")
        # Every worker gets the same number of windows (wrapping around), so DDP ranks step in lockstep.
        per_worker = -(-len(windows) // world_size)
        padded = [windows[i % len(windows)] for i in range(per_worker * world_size)]
        self.windows = padded[rank::world_size]
        self._readers: dict[tuple[str, str], ShardReader] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.windows)

    def _reader(self, stage: str, clip_id: str) -> ShardReader:
        if os.getpid() != self._pid:  # DataLoader workers must not share open file handles
            self._readers, self._pid = {}, os.getpid()
        key = (stage, clip_id)
        if key not in self._readers:
            self._readers[key] = ShardReader(self.layout.shard_path(stage, clip_id))
        return self._readers[key]

    def _read(self, stage: str, window: Window, count: int, columns: Sequence[str] = ("payload",)) -> list[dict]:
        return self._reader(stage, window.clip_id).read(window.start, window.start + count, columns)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window, t = self.windows[index], self.n_frames
        rgb = np.stack([f["payload"] for f in self._read("rgb", window, t)])
        sample: dict[str, torch.Tensor] = {"image": frames_tensor(rgb)}
        for stage in self.stages:
            if stage == "flow":
                if t > 1:
                    frames = self._read("flow", window, t - 1, ("payload", "occlusion"))
                    sample["flow"] = torch.from_numpy(np.stack([f["payload"] for f in frames]))
                    sample["occlusion"] = torch.from_numpy(
                        np.stack([f["occlusion"] for f in frames])[:, None].astype(np.float32))
                continue
            sample[stage] = frames_tensor(np.stack([f["payload"] for f in self._read(stage, window, t)]))
        sizes = {tuple(v.shape[-2:]) for v in sample.values()}
        if len(sizes) != 1:
            raise StorageError(f"clip {window.clip_id!r}: stage shards disagree on frame size {sorted(sizes)}")
        return sample
