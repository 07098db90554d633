"""`vid2vid synthesize` with a stand-in official model (imported-model file, official semantics) and --frames-dir.

The PNG frames the command writes are compared with the generator driven by hand, step by step, with
``ScaleHistory`` on the same shard data; the frames folder is checked to appear whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.metrics.lossless import read_lossless
from models.synthesis import to_uint8
from models.vid2vid.checkpoint import IMPORTED_FORMAT, load_generator, save_checkpoint
from models.vid2vid.generator import Vid2VidGenerator
from storage.clip_reader import iter_clip_frames
from storage.dataset import frames_tensor
from storage.frame_folder import FrameFolderWriter, read_frames_dir
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip
from tasks.synthesize import render_clip
from tests.models.test_official_synthesis import by_hand, official_config, single_config, standin

N_FRAMES = 5


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> DatasetLayout:
    layout = DatasetLayout(tmp_path_factory.mktemp("data"), "street")
    write_manifest(layout, [write_synthetic_clip(layout, "c0", 0, 64, 32, N_FRAMES, split="val")])
    return layout


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """An imported-model file: the official-semantics generator and the first-frame generator it carries."""
    generator = standin(official_config())
    torch.manual_seed(1)
    single = Vid2VidGenerator(single_config())
    path = tmp_path_factory.mktemp("models") / "official.pt"
    save_checkpoint(path, {"format": IMPORTED_FORMAT, "config": generator.config.to_dict(), "epoch": 0, "step": 0,
                           "generator": generator.state_dict(),
                           "single_frame": {"config": single.config.to_dict(), "generator": single.state_dict()}})
    return path


def _clip(layout: DatasetLayout) -> dict[str, torch.Tensor]:
    rows = list(iter_clip_frames(layout, "c0", ("rgb", "semantic", "instance"), (64, 32)))
    return {"image": frames_tensor(np.stack([r["rgb"] for r in rows]))[None],
            "semantic": frames_tensor(np.stack([r["semantic"] for r in rows]))[None],
            "instance": frames_tensor(np.stack([r["instance"] for r in rows]))[None]}


def _expected(model_path: Path, layout: DatasetLayout, first: str) -> list[np.ndarray]:
    """Every frame as uint8: the seeds, then the official recurrence driven by hand."""
    generator, _ = load_generator(model_path)
    clip = _clip(layout)
    if first == "real":
        seeds = clip["image"][:, :2]
    else:
        from models.vid2vid.batch import encode_source
        from models.vid2vid.official_import import load_single_frame

        single = load_single_frame(model_path)
        labels = encode_source(single.config, {"semantic": clip["semantic"][:, :2]})
        with torch.no_grad():
            seeds = torch.stack([single(labels[:, t:t + 1], None)["image"] for t in range(2)], 1)
    return [to_uint8(seeds[:, t]) for t in range(2)] + [to_uint8(f) for f in by_hand(generator, clip, seeds)]


@pytest.mark.usefixtures("prefect_server")
def test_cli_synthesizes_an_official_model_into_png_frames_equal_to_the_hand_driven_generator(model_path, street,
                                                                                             tmp_path, vid2vid):
    frames_dir = tmp_path / "frames"
    real = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", str(model_path), "--dataset",
                   "street", "--clip", "c0", "--out", str(tmp_path / "real.mp4"), "--first-frame", "real",
                   "--frames-dir", str(frames_dir))
    assert real.returncode == 0, real.stderr
    assert "frames 0..1 are the given first frames" in real.stdout
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"{i:06d}.png" for i in range(N_FRAMES)]
    written = list(read_frames_dir(frames_dir))
    expected = _expected(model_path, street, "real")
    assert [f.shape for f in written] == [(32, 64, 3)] * N_FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(written, expected, strict=True))
    real_rgb = [r["rgb"] for r in iter_clip_frames(street, "c0", ("rgb",), (64, 32), 2)]
    assert all(np.array_equal(a, b) for a, b in zip(written[:2], real_rgb, strict=True))

    # the first frames from the single-frame generator the model file carries; the previous set is replaced
    single = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", str(model_path), "--dataset",
                     "street", "--clip", "c0", "--out", str(tmp_path / "single.mp4"), "--first-frame", "single",
                     "--frames-dir", str(frames_dir))
    assert single.returncode == 0, single.stderr
    again = list(read_frames_dir(frames_dir))
    assert all(np.array_equal(a, b) for a, b in zip(again, _expected(model_path, street, "single"), strict=True))
    assert not np.array_equal(again[0], written[0])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


@pytest.mark.usefixtures("prefect_server")
def test_cli_refuses_frames_dirs_that_would_overwrite_data(model_path, street, tmp_path, vid2vid):
    args = ["--data-root", str(street.root), "synthesize", "--checkpoint", str(model_path), "--dataset", "street",
            "--clip", "c0", "--out", str(tmp_path / "x.mp4"), "--frames-dir"]
    shards = sorted(p.name for p in street.stage_dir("rgb").iterdir())
    managed = vid2vid(*args, str(street.stage_dir("rgb") / "frames"))
    assert managed.returncode == 2 and "refusing to write" in managed.stderr and "Traceback" not in managed.stderr
    dataset = vid2vid(*args, str(street.base))
    assert dataset.returncode == 2 and "dataset's folder" in dataset.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    other = vid2vid(*args, str(mine))
    assert other.returncode == 2 and "holds other files than frame PNGs" in other.stderr
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in street.stage_dir("rgb").iterdir()) == shards
    assert not (tmp_path / "x.mp4").exists()


def test_png_frames_equal_the_lossless_copy_and_a_shorter_run_replaces_the_set(model_path, street, tmp_path):
    frames_dir = tmp_path / "pngs"
    done = render_clip(model_path, street, "c0", tmp_path / "a.mp4", first_frame="real",
                       lossless=tmp_path / "a.lossless.mkv", frames_dir=frames_dir)
    assert done.frames == N_FRAMES and done.seed_frames == 2 and done.frames_dir == str(frames_dir)
    exact = list(read_lossless(tmp_path / "a.lossless.mkv"))
    assert all(np.array_equal(a, b) for a, b in zip(read_frames_dir(frames_dir), exact, strict=True))
    render_clip(model_path, street, "c0", tmp_path / "b.mp4", first_frame="zeros", limit=3, frames_dir=frames_dir)
    assert sorted(p.name for p in frames_dir.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    zeros = list(read_frames_dir(frames_dir))
    assert np.array_equal(zeros[0], np.full((32, 64, 3), 128, np.uint8))  # the zero frames the recurrence starts from


def test_a_failed_run_leaves_no_frames(tmp_path):
    folder = tmp_path / "frames"
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(RuntimeError), FrameFolderWriter(folder, 10) as writer:
        writer.write(frame)
        writer.write(frame)
        raise RuntimeError("synthesis failed")
    assert list(tmp_path.iterdir()) == []
    folder.mkdir()
    (folder / "000000.png").write_bytes(b"old")
    with pytest.raises(ValueError), FrameFolderWriter(folder, 10) as writer:
        writer.write(frame[..., :2])  # a bad frame: the earlier set stays as it was
    assert [p.name for p in tmp_path.iterdir()] == ["frames"] and (folder / "000000.png").read_bytes() == b"old"
    with FrameFolderWriter(folder, 1_000_001) as writer:
        writer.write(frame)
    assert [p.name for p in folder.iterdir()] == ["0000000.png"]  # 7 digits: names of a long clip still sort


@pytest.mark.usefixtures("prefect_server")
def test_evaluation_runs_the_official_model_from_its_real_first_frames_and_says_so(model_path, street, tmp_path):
    from flows.evaluate import EvaluateParams, evaluate_flow

    result = evaluate_flow(EvaluateParams(dataset="street", runs=[str(model_path)], metrics=["psnr"],
                                          data_root=str(street.root), runs_root=str(tmp_path / "runs"),
                                          out_dir=str(tmp_path / "eval")))
    clip = result.evaluations[0].clips[0]
    assert clip.seed_frames == 2 and clip.frames == N_FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(read_lossless(clip.lossless), _expected(model_path, street, "real"),
                                                    strict=True))
    assert any("frames 0..1 are the real frames" in note for note in result.notes)


@pytest.mark.usefixtures("prefect_server")
def test_cli_refuses_a_label_id_model_on_train_id_shards(street, tmp_path, vid2vid):
    """A released street model reads Cityscapes label ids (35); the synthetic street holds train ids (19): the
    one-hot channels would mean other classes, so synthesis is refused before any frame is written."""
    config = official_config().to_dict()
    sources = list(config["input"]["sources"])
    sources[0] = {**sources[0], "num_classes": 35, "channels": 35, "label_space": "cityscapes_label_ids"}
    config["input"] = {**config["input"], "sources": sources}
    generator = standin(type(official_config()).model_validate(config))
    path = tmp_path / "label_ids.pt"
    save_checkpoint(path, {"format": IMPORTED_FORMAT, "config": generator.config.to_dict(), "epoch": 0, "step": 0,
                           "generator": generator.state_dict()})
    out = tmp_path / "x.mp4"
    result = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", str(path), "--dataset", "street",
                     "--clip", "c0", "--out", str(out), "--frames-dir", str(tmp_path / "frames"))
    assert result.returncode == 1, result.stderr  # a StorageError: the data do not fit the model (exit 1)
    assert "cityscapes_label_ids" in result.stderr and "cityscapes_train_ids" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "frames").exists()


def test_a_model_loaded_once_renders_every_clip_as_a_fresh_load_does(model_path, street, tmp_path, monkeypatch):
    """The evaluation loads a run's model file once for all its clips: the shared generator carries nothing
    from one clip into the next (each render equals one from a fresh load), and the file is read once."""
    import models.vid2vid.checkpoint as checkpoint

    fresh = [list(read_lossless(render_clip(model_path, street, "c0", tmp_path / f"fresh{k}.mp4", first_frame="real",
                                            lossless=tmp_path / f"fresh{k}.mkv").lossless)) for k in range(2)]
    reads = []
    real_load = checkpoint.torch_load_safely
    monkeypatch.setattr(checkpoint, "torch_load_safely", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    loaded = checkpoint.load_model(model_path)
    shared = [list(read_lossless(render_clip(loaded, street, "c0", tmp_path / f"shared{k}.mp4", first_frame="real",
                                             lossless=tmp_path / f"shared{k}.mkv").lossless)) for k in range(2)]
    assert len(reads) == 1
    for a, b in zip(fresh, shared, strict=True):
        assert len(a) == len(b) == N_FRAMES and all(np.array_equal(x, y) for x, y in zip(a, b))
