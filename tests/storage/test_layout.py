import os
from pathlib import Path

import pytest

from storage.errors import InvalidNameError, PathOutsideRootError
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, read_manifest, write_manifest


def test_paths_stay_inside_the_data_root(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    assert layout.resolve("ds/stages/rgb/a.parquet").is_relative_to(tmp_path.resolve())
    for bad in ["../outside.parquet", "ds/../../etc/passwd", "/etc/passwd"]:
        with pytest.raises(PathOutsideRootError, match="outside the data root"):
            layout.resolve(bad)


def test_symlink_escaping_the_root_is_refused(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir(), elsewhere.mkdir()
    os.symlink(elsewhere, root / "link")
    with pytest.raises(PathOutsideRootError):
        DatasetLayout(root, "ds").resolve("link/file")


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", "x y", "/abs"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(InvalidNameError):
        DatasetLayout(tmp_path, "ds").shard_path("rgb", name)
    with pytest.raises(InvalidNameError):
        DatasetLayout(tmp_path, name)


def test_manifest_clip_id_pointing_outside_the_root_is_refused(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    write_manifest(layout, [ClipRecord(clip_id="../../../tmp/evil", source="x")])
    (record,) = read_manifest(layout)
    with pytest.raises(InvalidNameError, match="evil"):
        layout.shard_path("rgb", record.clip_id)


def test_manifest_round_trip_sorted(tmp_path):
    layout = DatasetLayout(tmp_path, "ds")
    records = [ClipRecord(clip_id=c, source=f"/videos/{c}.mp4", n_frames=3) for c in ["b", "a"]]
    write_manifest(layout, records)
    assert [r.clip_id for r in read_manifest(layout)] == ["a", "b"]


def test_reference_runs_go_beside_the_runs_root_not_into_it(monkeypatch, tmp_path):
    """A rebuild takes the newest run of its config in its runs root as its model: the shipped models' long runs
    must not land there (seen: `make demo` reported the 1200-step reference runs as its 64-step ones)."""
    from storage import locations

    monkeypatch.setenv("VID2VID_RUNS_ROOT", str(tmp_path / "runs"))
    assert locations.reference_runs_root() == tmp_path / "runs-reference"
    assert locations.reference_runs_root(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.delenv("VID2VID_RUNS_ROOT")
    assert locations.reference_runs_root() == Path("runs-reference")
