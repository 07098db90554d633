"""The training dataset: windows of T consecutive frames read straight from the stage shards.

Samples follow the batch contract of ``models/vid2vid/batch.py`` (without the batch dimension), so a
plain ``DataLoader`` produces what the trainer consumes. Each Ray worker builds this dataset with its
own ``rank``/``world_size`` and reads only its share of the windows: no data goes through the driver.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.shards import ShardReader

#: stage -> batch key(s) it provides
SOURCE_STAGES = ("semantic", "instance", "flow", "sketch", "pose")


@dataclass(frozen=True)
class Window:
    clip_id: str
    start: int


class ClipWindowDataset(Dataset):
    """Windows of ``n_frames`` frames from the clips of one split, with the stages the model needs.

    ``stages`` names the source stages to read besides rgb; ``sketch``/``pose`` become the ``extra``
    channels. A clip that lacks a requested stage is an error naming the clip and the missing shard.
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
        unknown = set(stages) - set(SOURCE_STAGES)
        if unknown:
            raise ValueError(f"unknown source stages {sorted(unknown)}; known: {SOURCE_STAGES}")
        self.layout, self.n_frames, self.stages = layout, n_frames, tuple(stages)
        records = [r for r in read_manifest(layout) if r.status == "ok" and (split is None or r.split == split)]
        if clip_ids is not None:
            records = [r for r in records if r.clip_id in set(clip_ids)]
        records = sorted(records, key=lambda r: r.clip_id)
        if not records:
            raise StorageError(f"dataset {layout.dataset!r} has no usable {split or 'any'}-split clips "
                               f"(manifest: {layout.manifest_path})")
        for record in records:
            for stage in ("rgb", *self.stages):
                if not layout.shard_path(stage, record.clip_id).is_file():
                    raise StorageError(f"clip {record.clip_id!r} has no {stage!r} shard at "
                                       f"{layout.shard_path(stage, record.clip_id)}; run that stage first")
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
        sample: dict[str, torch.Tensor] = {
            "image": torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(127.5).sub(1.0),
        }
        if "semantic" in self.stages:
            labels = np.stack([f["payload"] for f in self._read("semantic", window, t)])
            sample["semantic"] = torch.from_numpy(labels.astype(np.int64))
        if "instance" in self.stages:
            instances = np.stack([f["payload"] for f in self._read("instance", window, t)])
            sample["instance"] = torch.from_numpy(instances.astype(np.int64))
        if "flow" in self.stages and t > 1:
            frames = self._read("flow", window, t - 1, ("payload", "occlusion"))
            sample["flow"] = torch.from_numpy(np.stack([f["payload"] for f in frames]))
            sample["occlusion"] = torch.from_numpy(np.stack([f["occlusion"] for f in frames])[:, None].astype(np.float32))
        extras = [np.stack([f["payload"] for f in self._read(stage, window, t)])
                  for stage in ("sketch", "pose") if stage in self.stages]
        if extras:
            extra = np.concatenate(extras, axis=-1)
            sample["extra"] = torch.from_numpy(extra).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        sizes = {tuple(v.shape[-2:]) for v in sample.values()}
        if len(sizes) != 1:
            raise StorageError(f"clip {window.clip_id!r}: stage shards disagree on frame size {sorted(sizes)}")
        return sample
