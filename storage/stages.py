"""Writing one stage shard for one clip, skipped when its input fingerprint is unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.atomic import remove_stale_temps
from storage.fingerprint import canonical_hash, fingerprint, is_current, upstream_hashes
from storage.layout import DatasetLayout
from storage.locks import file_lock
from storage.shards import ShardMeta, ShardReader, write_shard

# Payload columns and codecs of each stage (docs/DESIGN.md): extra stages may add their own.
STAGE_CODECS: dict[str, dict[str, str]] = {
    "rgb": {"payload": "png_rgb"},
    "semantic": {"payload": "png_label"},
    "instance": {"payload": "png_instance"},
    "flow": {"payload": "f16_flow", "occlusion": "png_mask"},
    "sketch": {"payload": "png_rgb"},
    "pose": {"payload": "png_rgb", "person_mask": "png_mask"},
    # the official vid2vid encodings (their import doors and builders: models/preprocess/)
    "face15": {"payload": "png_planes"},          # Canny + landmark edges, 14 distance maps (H×W×15)
    "densepose": {"payload": "png_rgb_nearest"},  # DensePose IUV as the official loader reads it (V, U, I)
    "openpose": {"payload": "png_rgb_nearest"},   # OpenPose body/hands/face drawn as the official loader does
}


@dataclass(frozen=True)
class StageResult:
    stage: str
    clip_id: str
    path: Path
    skipped: bool
    n_frames: int
    extra: dict[str, Any]


def write_stage(
    layout: DatasetLayout,
    stage: str,
    clip_id: str,
    *,
    backend: str,
    config: Mapping[str, Any],
    code_version: str,
    frames: Callable[[], Iterable[Mapping[str, Any]]],
    upstream: Sequence[Path] = (),
    upstream_ids: Sequence[str] = (),
    codecs: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    force: bool = False,
) -> StageResult:
    """Write ``stages/<stage>/<clip_id>.parquet`` unless a shard made from the same inputs is already there.

    ``frames`` is called only when the shard must be (re)built, so skipping costs no decoding.
    ``upstream`` shards are hashed by content; ``upstream_ids`` are content hashes known otherwise
    (e.g. the source video's sha256).

    Concurrent writers of the same shard take turns under its shard lock; the later one then finds the
    shard current and skips. Writers of other clips are not held up.
    """
    path = layout.shard_path(stage, clip_id)
    expected = stage_fingerprint(stage, backend=backend, config=config, code_version=code_version,
                                 upstream=upstream, upstream_ids=upstream_ids)
    with file_lock(layout.shard_lock_path(stage, clip_id)):
        if not force and is_current(path, expected):
            existing = ShardReader(path)
            return StageResult(stage, clip_id, path, True, len(existing), existing.meta.extra)
        meta = ShardMeta(stage=stage, clip_id=clip_id, backend=backend, fingerprint=expected,
                         code_version=code_version, codecs=dict(codecs or STAGE_CODECS[stage]),
                         config_hash=canonical_hash(dict(config)), extra=dict(extra or {}))
        remove_stale_temps(path.parent, path.name)
        counter = _Counter(frames())
        written = write_shard(path, meta, counter)
    return StageResult(stage, clip_id, path, False, counter.count, written.extra)


def stage_fingerprint(stage: str, *, backend: str, config: Mapping[str, Any], code_version: str,
                      upstream: Sequence[Path] = (), upstream_ids: Sequence[str] = ()) -> str:
    """The fingerprint ``write_stage`` gives (and expects of) a shard made from these inputs."""
    return fingerprint(stage, backend, config, [*upstream_ids, *upstream_hashes(list(upstream))], code_version)


def stage_is_current(layout: DatasetLayout, stage: str, clip_id: str, **inputs: Any) -> bool:
    """True when ``write_stage`` with these inputs (``stage_fingerprint``'s keywords) would skip: lets a caller
    decide before starting workers that there is nothing to compute."""
    return is_current(layout.shard_path(stage, clip_id), stage_fingerprint(stage, **inputs))


def invalidate_stages(layout: DatasetLayout, clip_id: str, keep: Sequence[str] = ("rgb",)) -> list[str]:
    """Delete ``clip_id``'s shards of every stage but ``keep`` (its source changed); returns the stages."""
    removed = []
    for stage in layout.stages():
        if stage in keep:
            continue
        with file_lock(layout.shard_lock_path(stage, clip_id)):
            path = layout.shard_path(stage, clip_id)
            if path.is_file():
                path.unlink()
                removed.append(stage)
    return removed


class _Counter:
    def __init__(self, frames: Iterable[Mapping[str, Any]]) -> None:
        self._frames, self.count = frames, 0

    def __iter__(self):
        for frame in self._frames:
            self.count += 1
            yield frame
