"""Importing NVIDIA's released vid2vid checkpoints: stand-in files in the official layout, imported strictly.

The stand-ins are written from the official layout rules (flat ``nn.Sequential`` indices of
CompositeGenerator / CompositeLocalGenerator / GlobalGenerator, ``ResnetBlock.conv_block``), spelled out
here independently of the importer's renaming table, with random tensors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models.vid2vid.checkpoint import load_generator
from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.official_import import (
    OfficialImportError,
    import_official,
    load_single_frame,
    single_frame_config,
)

from ..conftest import run_cli
from .helpers_vid2vid import tiny_config

ARCH = {"ngf": 16, "n_downsampling": 2, "n_blocks": 3, "n_blocks_local": 1, "n_scales": 2, "n_prev": 2,
        "norm": "batch", "use_fg_prior": True, "foreground_classes": [13]}


def _conv(state, name, cin, cout, k, transposed=False):
    state[f"{name}.weight"] = torch.randn(cin, cout, k, k) if transposed else torch.randn(cout, cin, k, k)
    state[f"{name}.bias"] = torch.randn(cout)


def _norm(state, name, c, norm="batch", old_torch=False):
    if norm == "batch":
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(c)
        state[f"{name}.bias"] = torch.randn(c)
    state[f"{name}.running_mean"] = torch.randn(c)  # instance norm keeps them too (track_running_stats)
    state[f"{name}.running_var"] = torch.rand(c) + 0.5
    if not old_torch:
        state[f"{name}.num_batches_tracked"] = torch.tensor(7)


def _res(state, name, c, norm="batch"):
    _conv(state, f"{name}.conv_block.1", c, c, 3)
    _norm(state, f"{name}.conv_block.2", c, norm)
    _conv(state, f"{name}.conv_block.5", c, c, 3)
    _norm(state, f"{name}.conv_block.6", c, norm)


def _down(state, name, cin, ngf, n_down, n_res, norm="batch"):
    _conv(state, f"{name}.1", cin, ngf, 7)
    _norm(state, f"{name}.2", ngf, norm)
    for i in range(n_down):
        _conv(state, f"{name}.{4 + 3 * i}", ngf * 2**i, ngf * 2 ** (i + 1), 3)
        _norm(state, f"{name}.{5 + 3 * i}", ngf * 2 ** (i + 1), norm)
    for j in range(n_res):
        _res(state, f"{name}.{4 + 3 * n_down + j}", ngf * 2**n_down, norm)
    return 4 + 3 * n_down + n_res


def _up(state, name, ngf, n_down, n_res, start=0, norm="batch"):
    for j in range(n_res):
        _res(state, f"{name}.{start + j}", ngf * 2**n_down, norm)
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        _conv(state, f"{name}.{start + n_res + 3 * i}", c, c // 2, 3, transposed=True)
        _norm(state, f"{name}.{start + n_res + 3 * i + 1}", c // 2, norm)
    return start + n_res + 3 * n_down


def official_composite(scale: int, src: int, prev: int, arch=ARCH) -> dict[str, torch.Tensor]:
    """One ``latest_net_G<scale>.pth`` as the official code writes it (random values)."""
    s: dict[str, torch.Tensor] = {}
    ngf, nb = arch["ngf"] // 2**scale, arch["n_blocks"]
    ngf_fg = ngf // 2 if arch["n_downsampling"] > 2 else ngf
    if scale == 0:
        d = arch["n_downsampling"]
        _down(s, "model_down_seg", src, ngf, d, nb - nb // 2)
        _down(s, "model_down_img", prev, ngf, d, nb - nb // 2)
        for j in range(nb // 2):
            _res(s, f"model_res_img.{j}", ngf * 2**d)
            _res(s, f"model_res_flow.{j}", ngf * 2**d)
        _up(s, "model_up_img", ngf, d, 0)
        _up(s, "model_up_flow", ngf, d, 0)
        _down(s, "indv_down", src, ngf_fg, d, 0)
        for j in range(nb):
            _res(s, f"indv_res.{j}", ngf_fg * 2**d)
        _up(s, "indv_up", ngf_fg, d, 0)
    else:
        nl = arch["n_blocks_local"]
        _down(s, "model_down_seg", src, ngf, 1, 0)
        _down(s, "model_down_img", prev, ngf, 1, 0)
        _up(s, "model_up_img", ngf, 1, nl)
        _up(s, "model_up_flow", ngf, 1, nl)
        _down(s, "indv_down", src, ngf_fg, 1, 0)
        _up(s, "indv_up", ngf_fg, 1, nl)
    _conv(s, "model_final_img.1", ngf, 3, 7)
    _conv(s, "model_final_flow.1", ngf, 2, 7)
    _conv(s, "model_final_w.1", ngf, 1, 7)
    _conv(s, "indv_final.1", ngf_fg, 3, 7)
    return s


def official_global(src: int, ngf: int = 64, n_down: int = 3, n_blocks: int = 9) -> dict[str, torch.Tensor]:
    """pix2pixHD's GlobalGenerator (instance norm, running statistics saved): ``model.<i>``."""
    s: dict[str, torch.Tensor] = {}
    end = _down(s, "model", src, ngf, n_down, n_blocks, norm="instance")
    end = _up(s, "model", ngf, n_down, 0, start=end, norm="instance")
    _conv(s, f"model.{end + 1}", ngf, 3, 7)
    return s


OPT = """------------ Options -------------
fg: True
fg_labels: [13]
input_nc: 3
label_nc: {label_nc}
loadSize: 512
n_blocks: 3
n_blocks_local: 1
n_downsample_G: 2
n_frames_G: 3
n_scales_spatial: 2
name: stand_in
ngf: {ngf}
no_flow: False
norm: batch
use_instance: True
-------------- End ----------------
"""


@pytest.fixture()
def official_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in official experiment folder and the preset (YAML) describing it."""
    config = tiny_config(generator=ARCH)
    preset = tmp_path / "stand_in.yaml"
    preset.write_text(yaml.safe_dump({**config.to_dict(), "name": "stand_in"}))
    folder = tmp_path / "checkpoints" / "stand_in"
    folder.mkdir(parents=True)
    src = 3 * config.input.source_channels
    torch.manual_seed(0)
    for s in range(2):
        torch.save(official_composite(s, src, 6), folder / f"latest_net_G{s}.pth")
    (folder / "opt.txt").write_text(OPT.format(label_nc=config.input.source_channels - 1, ngf=16))
    return folder, preset


def test_import_maps_every_official_tensor(official_dir, tmp_path) -> None:
    folder, preset = official_dir
    out = tmp_path / "model.pt"
    summary = import_official(folder, out, preset=preset)
    assert summary["files"].keys() == {"latest_net_G0.pth", "latest_net_G1.pth"} and not summary["single_frame"]
    generator, config = load_generator(out)
    assert config.generator.composition == "official" and config.generator.test_norm_stats == "batch"
    ours = generator.state_dict()
    g0 = torch.load(folder / "latest_net_G0.pth")
    g1 = torch.load(folder / "latest_net_G1.pth")
    # a few tensors located by the layout rules: the image encoder's own coarsest residual blocks, the
    # branch blocks, the fine scale's up path after its local blocks, the heads
    assert torch.equal(ours["scales.0.img_down.10.body.5.weight"], g0["model_down_img.10.conv_block.5.weight"])
    assert torch.equal(ours["scales.0.src_down.11.body.6.running_var"], g0["model_down_seg.11.conv_block.6.running_var"])
    assert torch.equal(ours["scales.0.flow_res.0.body.1.weight"], g0["model_res_flow.0.conv_block.1.weight"])
    assert torch.equal(ours["scales.0.fg_res.2.body.2.bias"], g0["indv_res.2.conv_block.2.bias"])
    assert torch.equal(ours["scales.1.bg_up.1.weight"], g1["model_up_img.1.weight"])
    assert torch.equal(ours["scales.1.mask_out.1.weight"], g1["model_final_w.1.weight"])
    n_official = sum(v.numel() for v in (*g0.values(), *g1.values()) if v.dtype.is_floating_point)
    assert n_official == sum(v.numel() for v in ours.values() if v.dtype.is_floating_point)
    # the imported generator runs and reproduces itself (round trip through our model file)
    again, _ = load_generator(out)
    src = torch.rand(1, 3, config.input.source_channels, 32, 64)
    prev = torch.rand(1, 2, 3, 32, 64) * 2 - 1
    bg = torch.ones(1, 1, 32, 64)
    with torch.no_grad():
        assert torch.equal(generator(src, prev, bg)["image"], again(src, prev, bg)["image"])


def test_single_frame_generator_and_old_files_without_batch_counters(official_dir, tmp_path) -> None:
    folder, preset = official_dir
    config = tiny_config(generator=ARCH)
    labels = config.input.source_channels - 1
    old = {k: v for k, v in torch.load(folder / "latest_net_G1.pth").items() if not k.endswith("num_batches_tracked")}
    torch.save(old, folder / "latest_net_G1.pth")  # PyTorch 0.4.0 wrote no num_batches_tracked
    torch.save(official_global(labels), folder / "latest_net_G_512.pth")
    summary = import_official(folder, tmp_path / "model.pt", preset=preset)
    assert summary["single_frame"]
    single = load_single_frame(tmp_path / "model.pt")
    assert single is not None and single.config.generator.ngf == 64 and single.config.generator.norm == "instance"
    assert single.config.generator.n_downsampling == single_frame_config(config, 512).generator.n_downsampling == 3
    assert single.source_channels == labels and single.n_prev == 0
    official = torch.load(folder / "latest_net_G_512.pth")
    assert torch.equal(single.state_dict()["scales.0.bg_out.1.weight"], official["model.32.weight"])
    with torch.no_grad():
        assert single(torch.rand(1, 1, labels, 32, 64), None)["image"].shape == (1, 3, 32, 64)


def _expect_refusal(folder: Path, preset: Path, out: Path, *needles: str) -> None:
    out.write_bytes(b"previous good model")
    with pytest.raises(OfficialImportError) as info:
        import_official(folder, out, preset=preset)
    for needle in needles:
        assert needle in str(info.value)
    assert out.read_bytes() == b"previous good model"  # nothing replaced
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temp left behind


@pytest.mark.parametrize("damage", ["missing", "unknown", "shape"])
def test_key_and_shape_mismatches_are_refused(official_dir, tmp_path, damage) -> None:
    folder, preset = official_dir
    path = folder / "latest_net_G1.pth"
    state = torch.load(path)
    if damage == "missing":
        del state["indv_up.0.conv_block.5.weight"]
        needles = ("latest_net_G1.pth", "missing 1 keys: indv_up.0.conv_block.5.weight")
    elif damage == "unknown":
        state["model_extra.0.weight"] = torch.zeros(3)
        needles = ("latest_net_G1.pth", "unknown 1 keys: model_extra.0.weight")
    else:
        state["model_final_img.1.weight"] = torch.zeros(3, 9, 7, 7)
        needles = ("latest_net_G1.pth", "model_final_img.1.weight has shape (3, 9, 7, 7)")
    torch.save(state, path)
    _expect_refusal(folder, preset, tmp_path / "model.pt", *needles)


def test_bad_files_and_wrong_presets_are_refused(official_dir, tmp_path) -> None:
    folder, preset = official_dir
    out = tmp_path / "model.pt"
    g1 = folder / "latest_net_G1.pth"
    good = g1.read_bytes()
    g1.write_bytes(good[: len(good) // 2])
    _expect_refusal(folder, preset, out, "latest_net_G1.pth", "truncated")
    g1.write_text("not a checkpoint")
    _expect_refusal(folder, preset, out, "latest_net_G1.pth", "not a readable PyTorch checkpoint")
    g1.unlink()
    _expect_refusal(folder, preset, out, "missing latest_net_G1.pth")
    g1.write_bytes(good)
    opt = folder / "opt.txt"
    opt.write_text(opt.read_text().replace("ngf: 16", "ngf: 32"))
    _expect_refusal(folder, preset, out, "does not match", "generator.ngf: preset 16, checkpoint 32")


def test_cli_imports_and_refuses(official_dir, tmp_path, vid2vid) -> None:
    folder, preset = official_dir
    out = tmp_path / "imported.pt"
    done = vid2vid("import-official", "--checkpoint-dir", str(folder), "--preset", str(preset), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "latest_net_G0.pth" in done.stdout and out.is_file()
    generator, _ = load_generator(out)
    assert isinstance(generator, Vid2VidGenerator)
    (folder / "latest_net_G0.pth").write_text("garbage")
    bad = vid2vid("import-official", "--checkpoint-dir", str(folder), "--preset", str(preset), "--out",
                  str(tmp_path / "other.pt"))
    assert bad.returncode == 1 and "latest_net_G0.pth" in bad.stderr and not (tmp_path / "other.pt").exists()


def official_local(src: int, ngf: int = 32, n_down: int = 4, n_blocks: int = 9, n_blocks_local: int = 3) -> dict[str, torch.Tensor]:
    """pix2pixHD's LocalEnhancer with one enhancer (the 2048 street model's first-frame G, instance norm): the
    global generator of width 2 * ngf without its last three layers (pad, conv, tanh) as ``model.<i>``, then
    ``model1_1`` = [pad, conv 7x7, norm, relu, conv stride 2, norm, relu] and ``model1_2`` = residual blocks,
    [transposed conv, norm, relu], [pad, conv 7x7, tanh]."""
    s: dict[str, torch.Tensor] = {}
    end = _down(s, "model", src, 2 * ngf, n_down, n_blocks - n_blocks // 2, norm="instance")
    for j in range(n_blocks // 2):
        _res(s, f"model.{end + j}", 2 * ngf * 2**n_down, norm="instance")
    _up(s, "model", 2 * ngf, n_down, 0, start=end + n_blocks // 2, norm="instance")
    _conv(s, "model1_1.1", src, ngf, 7)
    _norm(s, "model1_1.2", ngf, "instance")
    _conv(s, "model1_1.4", ngf, 2 * ngf, 3)
    _norm(s, "model1_1.5", 2 * ngf, "instance")
    for j in range(n_blocks_local):
        _res(s, f"model1_2.{j}", 2 * ngf, norm="instance")
    _conv(s, f"model1_2.{n_blocks_local}", 2 * ngf, ngf, 3, transposed=True)
    _norm(s, f"model1_2.{n_blocks_local + 1}", ngf, "instance")
    _conv(s, f"model1_2.{n_blocks_local + 4}", ngf, 3, 7)
    return s


def test_the_2048_first_frame_generator_is_a_local_enhancer_without_coarse_outputs(tmp_path) -> None:
    """NVIDIA's ``define_G(35, 3, 0, 32, 'local', 4, 'instance', 0)``: 182,852,355 parameters (counted without
    allocating them), and a stand-in of that layout (smaller widths) imports key by key and runs."""
    from models.vid2vid.config import ModelConfig, load_model_config
    from models.vid2vid.official_import import load_official_state, single_key_map

    full = single_frame_config(load_model_config("label2city_2048"), 2048)
    assert full.generator.n_scales == 2 and not full.generator.coarse_outputs
    with torch.device("meta"):
        assert sum(p.numel() for p in Vid2VidGenerator(full).parameters()) == 182_852_355
    small = ModelConfig.model_validate({**full.to_dict(), "input": {**full.to_dict()["input"], "width": 64, "height": 32},
                                        "generator": {**full.to_dict()["generator"], "ngf": 8, "n_downsampling": 2,
                                                      "n_blocks": 3, "n_blocks_local": 1}})
    single = Vid2VidGenerator(small)
    assert single.scales[0].bg_out is None and single.scales[1].bg_out is not None
    path = tmp_path / "latest_net_G_2048.pth"
    torch.save(official_local(35, ngf=4, n_down=2, n_blocks=3, n_blocks_local=1), path)
    load_official_state(single, {path: single_key_map(single)})
    official = torch.load(path)
    ours = single.state_dict()
    assert torch.equal(ours["scales.1.bg_out.1.weight"], official["model1_2.5.weight"])
    assert torch.equal(ours["scales.0.bg_res.0.body.1.weight"], official["model.12.conv_block.1.weight"])
    assert len(ours) == len([k for k in official if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))])
    with torch.no_grad():
        assert single(torch.rand(1, 1, 35, 32, 64), None)["image"].shape == (1, 3, 32, 64)
        with pytest.raises(ValueError, match="coarse_outputs"):
            single(torch.rand(1, 1, 35, 32, 64), None, n_scales=1)
