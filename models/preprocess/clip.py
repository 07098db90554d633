"""Building one stage shard of one clip: the rules (skip, validate, quarantine, fail) without Prefect.

Failure policy (why it looks like this):
- bad input (missing rgb shard, wrong frame size, unknown label ids, malformed import files) can never
  succeed on retry: ``preprocess_clip`` returns a ``quarantined`` outcome with the reason and the flow
  quarantines the clip;
- setup problems (missing weights, no mediapipe venv, no OpenMMLab) raise with a message naming what is
  missing; never a silent skip;
- anything else (I/O hiccups, a killed worker) raises too, and the caller may retry it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.preprocess.base import PreprocessInputError, PreprocessSetupError
from models.preprocess.cityscapes import LABEL_IDS, validate_label_id_instances, validate_label_ids
from models.preprocess.labels import validate_instance_ids, validate_train_ids
from models.preprocess.mediapipe_client import MediapipeUnavailableError
from models.preprocess.openmmlab import OpenMMLabUnavailableError
from models.preprocess.registry import CODE_VERSION, BackendSettings, build, import_files, label_space
from models.preprocess.run import run_flow, run_frames
from models.weights import WeightsError
from storage.errors import BadInputError, ShardError
from storage.fingerprint import sha256_file
from storage.layout import DatasetLayout
from storage.shards import ShardReader
from storage.stages import stage_is_current, write_stage

BAD_INPUT = (PreprocessInputError, BadInputError, ShardError)
SETUP = (WeightsError, MediapipeUnavailableError, OpenMMLabUnavailableError, PreprocessSetupError)


class RunSettings(BaseModel):
    """What every clip of one run shares."""

    model_config = ConfigDict(extra="forbid")

    device: str = "cpu"
    resolution: tuple[int, int] | None = Field(None, description="(width, height) the networks see")
    weights_dir: str | None = None
    batch_size: int = Field(4, ge=1)
    threads: int = Field(1, ge=1)
    force: bool = False

    @property
    def network_hw(self) -> tuple[int, int] | None:
        """The resolution as the backends take it, (height, width)."""
        return None if self.resolution is None else (self.resolution[1], self.resolution[0])


class StageOutcome(BaseModel):
    clip_id: str
    stage: str
    backend: str
    status: Literal["written", "skipped", "validated", "quarantined"]
    frames: int = 0
    empty: int = 0
    seconds: float = 0.0
    error: str = ""


def _rgb_frames(reader: ShardReader, chunk: int) -> Iterator[Any]:
    for frame in reader.iter_frames(columns=["payload"], chunk=chunk):
        yield frame["payload"]


def _validate_dataset_shard(layout: DatasetLayout, stage: str, clip_id: str, rgb: ShardReader) -> StageOutcome:
    """``dataset`` backend: the labels came with the source; check them instead of recomputing."""
    path = layout.shard_path(stage, clip_id)
    if not path.is_file():
        raise PreprocessInputError(f"no {stage} labels came with clip {clip_id} (expected {path}); "
                                   f"choose a computed {stage} backend")
    shard = ShardReader(path)
    if len(shard) != len(rgb):
        raise PreprocessInputError(f"{stage} shard has {len(shard)} frames, the rgb shard {len(rgb)}")
    if (shard.meta.height, shard.meta.width) != (rgb.meta.height, rgb.meta.width):
        raise PreprocessInputError(f"{stage} frames are {shard.meta.width}x{shard.meta.height}, the rgb frames "
                                   f"{rgb.meta.width}x{rgb.meta.height}")
    if shard.meta.extra.get("label_space") == LABEL_IDS:  # e.g. imported gtFine label ids
        check = {"semantic": validate_label_ids, "instance": validate_label_id_instances}.get(stage)
    else:
        check = {"semantic": validate_train_ids, "instance": validate_instance_ids}.get(stage)
    if check is not None:
        for frame in shard.iter_frames(columns=["payload"]):
            check(frame["payload"], f"{stage} frame {frame['frame_idx']} of {clip_id}")
    return StageOutcome(clip_id=clip_id, stage=stage, backend="dataset", status="validated", frames=len(shard))


def preprocess_clip(layout: DatasetLayout, clip_id: str, stage: str, settings: BackendSettings, run: RunSettings,
                    expected_size: tuple[int, int] | None = None,
                    before_compute: Callable[[], None] | None = None) -> StageOutcome:
    """Build (or skip, or validate) ``stages/<stage>/<clip_id>.parquet``. Bad input comes back quarantined.

    ``expected_size`` is the manifest's (width, height) of the clip; ``before_compute`` runs only when frames
    are about to be computed (a skip or a validation loads no network and no torch).
    """
    start = time.perf_counter()
    try:
        rgb_path = layout.shard_path("rgb", clip_id)
        if not rgb_path.is_file():
            raise PreprocessInputError(f"missing upstream rgb shard {rgb_path}")
        rgb = ShardReader(rgb_path)
        size = (rgb.meta.height, rgb.meta.width)
        if expected_size and tuple(expected_size) != (rgb.meta.width, rgb.meta.height):
            raise PreprocessInputError(f"rgb frames are {rgb.meta.width}x{rgb.meta.height}, the manifest says "
                                       f"{expected_size[0]}x{expected_size[1]}")
        if settings.backend == "dataset":
            outcome = _validate_dataset_shard(layout, stage, clip_id, rgb)
            return outcome.model_copy(update={"seconds": time.perf_counter() - start})
        empty = 0

        def outputs() -> Iterator[dict[str, Any]]:
            nonlocal empty
            if before_compute is not None:
                before_compute()
            backend = build(stage, settings, clip_id, weights_dir=run.weights_dir, device=run.device,
                            resolution=run.network_hw)
            if hasattr(backend, "check_count"):
                backend.check_count(len(rgb))
            if hasattr(backend, "bind"):  # importers matching their files to the clip's frames
                backend.bind(len(rgb), rgb.meta.extra.get("source"))
            runner = run_flow if stage == "flow" else run_frames
            for out in runner(backend, _rgb_frames(rgb, run.batch_size), run.batch_size, size):
                empty += bool(out.get("empty", False))
                yield out

        space = label_space(stage, settings)
        result = write_stage(layout, stage, clip_id, frames=outputs, force=run.force,
                             extra={"label_space": space} if space else None,
                             **_fingerprint_inputs(rgb_path, stage, settings, run, clip_id))
        if result.skipped:
            empty = _count_empty(result.path)
        return StageOutcome(clip_id=clip_id, stage=stage, backend=settings.backend,
                            status="skipped" if result.skipped else "written", frames=result.n_frames, empty=empty,
                            seconds=time.perf_counter() - start)
    except BAD_INPUT as exc:
        if settings.backend != "dataset":
            layout.shard_path(stage, clip_id).unlink(missing_ok=True)  # never leave a stale shard behind
        return StageOutcome(clip_id=clip_id, stage=stage, backend=settings.backend, status="quarantined",
                            error=f"{stage}: {exc}", seconds=time.perf_counter() - start)


def _fingerprint_inputs(rgb_path: Path, stage: str, settings: BackendSettings, run: RunSettings,
                       clip_id: str) -> dict[str, Any]:
    return {"backend": settings.backend, "config": {**settings.fingerprint_config(), "resolution": run.network_hw},
            "code_version": CODE_VERSION, "upstream": [rgb_path],
            "upstream_ids": _import_hashes(stage, settings, clip_id)}


def would_skip(layout: DatasetLayout, clip_id: str, stage: str, settings: BackendSettings, run: RunSettings,
               expected_size: tuple[int, int] | None = None) -> bool:
    """True when ``preprocess_clip`` would only find the shard current and skip it (no frame computed, nothing
    validated or quarantined). False whenever unsure: the task then decides as always."""
    if run.force or settings.backend == "dataset":
        return False
    rgb_path = layout.shard_path("rgb", clip_id)
    try:
        rgb = ShardReader(rgb_path)
        if expected_size and tuple(expected_size) != (rgb.meta.width, rgb.meta.height):
            return False
        return stage_is_current(layout, stage, clip_id, **_fingerprint_inputs(rgb_path, stage, settings, run, clip_id))
    except Exception:  # noqa: BLE001 - a missing or unreadable input is the task's to report
        return False


def _import_hashes(stage: str, settings: BackendSettings, clip_id: str) -> list[str]:
    """Imported files are inputs too: a changed import file must rebuild the shard."""
    return [sha256_file(f) for f in import_files(stage, settings, clip_id) if f.is_file()]


def _count_empty(path: Path) -> int:
    reader = ShardReader(path)
    if "empty" not in reader.columns:
        return 0
    return sum(bool(f["empty"]) for f in reader.read(0, len(reader), columns=["empty"], decode=False))


def limit_threads(threads: int) -> None:
    """One Dask worker process = ``threads`` cores: keeps 2 workers from fighting over 2 cores."""
    import cv2
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    cv2.setNumThreads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
