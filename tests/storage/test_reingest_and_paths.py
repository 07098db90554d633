"""A good clip survives careless re-ingests; outputs and stage folders cannot escape or clobber the store;
frame sizes are validated. Storage-level, real files; what is on disk afterwards is asserted."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from storage.errors import ManagedPathError, PathOutsideRootError
from storage.ingest import IngestConfig, ingest_clip
from storage.layout import DatasetLayout, check_output_path
from storage.manifest import merge_records, read_manifest
from storage.stages import write_stage
from storage.video import MAX_FRAME_PIXELS, FramePolicy, VideoSource, discover, parse_size
from tests.storage.videos import write_frame_folder, write_mp4

CONFIG = IngestConfig(policy=FramePolicy(size=(32, 24)))


def _ingest(layout: DatasetLayout, path: Path, config: IngestConfig = CONFIG):
    (source,) = discover(path)
    record = ingest_clip(layout, source, "clip", config)
    merge_records(layout, [record])
    return record


def _with_semantic(layout: DatasetLayout) -> Path:
    write_stage(layout, "semantic", "clip", backend="test", config={}, code_version="t",
                frames=lambda: ({"payload": np.full((24, 32), 3, np.uint8)} for _ in range(6)))
    return layout.shard_path("semantic", "clip")


def _snapshot(layout: DatasetLayout) -> dict[str, bytes]:
    return {str(p.relative_to(layout.base)): p.read_bytes() for p in layout.base.rglob("*.parquet")}


def test_corrupt_or_different_file_named_like_a_good_clip_leaves_it_intact(tmp_path, data_root):
    layout = DatasetLayout(data_root, "ds")
    (tmp_path / "good").mkdir()
    good = write_mp4(tmp_path / "good" / "clip.mp4", n=6)
    assert _ingest(layout, good).status == "ok"
    _with_semantic(layout)
    before, manifest_before = _snapshot(layout), read_manifest(layout)

    (tmp_path / "bad").mkdir()
    corrupt = tmp_path / "bad" / "clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    for config in (CONFIG, CONFIG.model_copy(update={"replace": True})):  # even --replace never takes a bad file
        record = _ingest(layout, corrupt, config)
        assert record.status == "rejected" and str(corrupt) in record.error and "was kept" in record.error
        assert _snapshot(layout) == before and read_manifest(layout) == manifest_before
        assert not layout.quarantine_path("clip").exists()
        assert json.loads(layout.rejection_path("clip").read_text())["error"] == record.error

    (tmp_path / "other").mkdir()
    other = write_mp4(tmp_path / "other" / "clip.mp4", n=9, width=80)
    record = _ingest(layout, other)
    assert record.status == "rejected" and "--replace" in record.error
    assert _snapshot(layout) == before and read_manifest(layout) == manifest_before

    replaced = _ingest(layout, other, CONFIG.model_copy(update={"replace": True}))
    assert replaced.status == "ok" and replaced.n_frames == 9
    (row,) = read_manifest(layout)
    assert row.n_frames == 9 and row.source == str(other) and row.source_sha256 != manifest_before[0].source_sha256
    assert not layout.shard_path("semantic", "clip").exists()  # invalidated explicitly
    assert not layout.rejection_path("clip").exists()


def test_a_new_bad_clip_is_quarantined_without_any_shard(tmp_path, data_root):
    layout = DatasetLayout(data_root, "ds")
    one = write_frame_folder(tmp_path / "one", n=1)
    record = _ingest(layout, one)
    assert record.status == "quarantined" and "only 1 frame" in record.error
    assert not layout.shard_path("rgb", "clip").exists() and layout.quarantine_path("clip").is_file()
    assert [p for p in layout.base.rglob("*.tmp")] == []


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width``x``height`` (no pixel data worth the name): cheap to make."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_source_over_the_frame_bound_is_quarantined_not_a_crash(tmp_path, data_root):
    folder = tmp_path / "huge"
    folder.mkdir()
    for k in range(3):
        _png_header_only(folder / f"{k:05d}.png", 9000, 8000)
    assert 9000 * 8000 > MAX_FRAME_PIXELS
    layout = DatasetLayout(data_root, "ds")
    record = ingest_clip(layout, VideoSource("huge", folder, tuple(sorted(folder.iterdir()))), "huge", CONFIG)
    assert record.status == "quarantined" and "too large: 9000x8000" in record.error
    assert layout.quarantine_path("huge").is_file() and not layout.shard_path("rgb", "huge").exists()


@pytest.mark.parametrize("text, message", [("0x32", "must be positive"), ("-4x8", "must be positive"),
                                           ("100000x100000", "larger than"), ("32", "expected WIDTHxHEIGHT"),
                                           ("31x16", "must be even")])
def test_invalid_sizes_are_refused_with_the_option_named(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_size(text, "--size", even=True)
    assert str(info.value).startswith("--size")


def test_frame_policy_validates_its_sizes():
    assert FramePolicy(size=(33, 17)).size == (33, 17)
    for size in [(0, 32), (-2, 8), (20000, 20000), (8, 8)]:
        with pytest.raises(ValueError, match="frame size"):
            FramePolicy(size=size)


def test_outputs_never_land_on_managed_files(tmp_path, data_root):
    layout = DatasetLayout(data_root, "ds")
    write_stage(layout, "rgb", "c", backend="t", config={}, code_version="t",
                frames=lambda: ({"payload": np.zeros((8, 8, 3), np.uint8)} for _ in range(2)))
    merge_records(layout, [])
    for out in [layout.manifest_path, layout.shard_path("rgb", "c"), layout.stage_dir("rgb") / "new.mp4",
                layout.quarantine_dir / "x.mp4", layout.base / ".locks" / "x.mp4"]:
        with pytest.raises(ManagedPathError, match="refusing to write"):
            check_output_path(out, data_root)
    os.symlink(layout.stage_dir("rgb"), tmp_path / "sneaky")  # a link from outside onto the shards
    with pytest.raises(ManagedPathError):
        check_output_path(tmp_path / "sneaky" / "c.parquet", data_root)
    assert check_output_path(layout.base / "videos" / "out.mp4", data_root) == (layout.base / "videos" / "out.mp4").resolve()
    assert check_output_path(tmp_path / "out.mp4", data_root) == (tmp_path / "out.mp4").resolve()


def test_a_symlinked_stage_folder_is_refused(tmp_path, data_root):
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = DatasetLayout(data_root, "ds")
    (layout.base / "stages").mkdir(parents=True)
    os.symlink(outside, layout.base / "stages" / "rgb")
    video = write_mp4(tmp_path / "v.mp4", n=4)
    with pytest.raises(PathOutsideRootError, match="outside the data root"):
        ingest_clip(layout, VideoSource("v", video), "v", CONFIG)
    with pytest.raises(PathOutsideRootError):
        layout.shard_path("rgb", "v")
    assert list(outside.iterdir()) == []
