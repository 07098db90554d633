"""Importing the discriminators of an official vid2vid experiment folder (D_I and every D_T), strictly.

The stand-in files are written from this description of the official layout (written here, independently of
the importer): a MultiscaleDiscriminator holds ``num_D`` PatchGANs; sub-discriminator ``i`` runs on the input
after ``num_D - 1 - i`` halvings (so ``i = num_D - 1`` sees full resolution) and its first layer has
``min(64, ndf * 2**(num_D - 1 - i))`` filters. Each PatchGAN is: layer 0 = 4x4 conv stride 2 + leaky ReLU;
layers 1..n_layers = 4x4 conv (stride 2, the last one stride 1) + norm + leaky ReLU, filters doubling (at most
512); layer n_layers + 1 = 4x4 conv to one channel, stride 1; padding 2 everywhere. Saved as
``scale<i>_layer<j>.<k>`` (k = position inside layer j) or, without feature matching, as one flat sequence
``layer<i>.<position>``. D_I's input is cat(labels, image); D_T's is cat(K frames, K-1 backward flows / 20).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from models.vid2vid.checkpoint import load_checkpoint, load_discriminators, load_generator
from models.vid2vid.config import ModelConfig
from models.vid2vid.official_import import (
    OfficialImportError,
    import_official,
    load_official_discriminators,
)
from models.vid2vid.trainer import Vid2VidTrainer

from ..conftest import run_cli
from .helpers_vid2vid import tiny_config
from .test_official_import import ARCH, OPT, _expect_refusal, official_composite

D_ARCH = {"ndf": 8, "n_layers": 2, "num_d": 2, "norm": "batch", "n_frames_d": 3, "n_scales_temporal": 2}
D_OPT = "ndf: 8\nn_layers_D: 2\nnum_D: 2\nn_frames_D: 3\nn_scales_temporal: 2\n"


def _layer_widths(ndf: int, num_d: int, i: int, n_layers: int) -> list[int]:
    first = min(64, ndf * 2 ** (num_d - 1 - i))
    return [first] + [min(first * 2**j, 512) for j in range(1, n_layers + 1)]


def _name(i: int, j: int, k: int, n_layers: int, flat: bool) -> str:
    if not flat:
        return f"scale{i}_layer{j}.{k}"
    return f"layer{i}.{0 if j == 0 else 2 + 3 * (j - 1) + k}"


def official_multiscale(in_ch: int, ndf: int, n_layers: int, num_d: int, norm: str = "batch",
                        flat: bool = False, old_torch: bool = False) -> dict[str, torch.Tensor]:
    """One official discriminator file (random values) as the official training saves it."""
    s: dict[str, torch.Tensor] = {}
    for i in range(num_d):
        widths = _layer_widths(ndf, num_d, i, n_layers)
        c_in = in_ch
        for j in range(n_layers + 2):
            c_out = widths[j] if j <= n_layers else 1
            conv = _name(i, j, 0, n_layers, flat)
            s[f"{conv}.weight"] = torch.randn(c_out, c_in, 4, 4) * 0.05
            s[f"{conv}.bias"] = torch.randn(c_out) * 0.1
            if 1 <= j <= n_layers:
                nrm = _name(i, j, 1, n_layers, flat)
                if norm == "batch":
                    s[f"{nrm}.weight"] = 1 + 0.1 * torch.randn(c_out)
                    s[f"{nrm}.bias"] = 0.1 * torch.randn(c_out)
                s[f"{nrm}.running_mean"] = torch.randn(c_out)  # kept by instance norm too (track_running_stats)
                s[f"{nrm}.running_var"] = torch.rand(c_out) + 0.5
                if not old_torch:
                    s[f"{nrm}.num_batches_tracked"] = torch.tensor(3)
            c_in = c_out
    return s


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, num_d: int, n_layers: int, norm: str,
                     flat: bool = False) -> list[list[torch.Tensor]]:
    """The official discriminator's outputs (training mode), computed from the description above: finest first,
    every layer's output."""
    results = []
    for step in range(num_d):
        i = num_d - 1 - step
        h, feats = x, []
        for j in range(n_layers + 2):
            conv = _name(i, j, 0, n_layers, flat)
            h = F.conv2d(h, state[f"{conv}.weight"], state[f"{conv}.bias"], stride=2 if j < n_layers else 1, padding=2)
            if 1 <= j <= n_layers:
                nrm = _name(i, j, 1, n_layers, flat)
                if norm == "batch":
                    h = F.batch_norm(h, None, None, state[f"{nrm}.weight"], state[f"{nrm}.bias"], training=True)
                else:
                    h = F.instance_norm(h)
            if j <= n_layers:
                h = F.leaky_relu(h, 0.2)
            feats.append(h)
        results.append(feats)
        x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    return results


def _config(**d: object) -> ModelConfig:
    return tiny_config(generator=ARCH, discriminator={**D_ARCH, **d})


def write_official_experiment(base: Path, config: ModelConfig, seed: int) -> tuple[Path, Path]:
    """A stand-in experiment folder under ``base`` (G0, G1, D, D_T0, D_T1 and opt.txt, random weights drawn
    from ``seed``) and the preset that describes it."""
    preset = base / "stand_in.yaml"
    preset.write_text(yaml.safe_dump({**config.to_dict(), "name": "stand_in"}))
    folder = base / "checkpoints" / "stand_in"
    folder.mkdir(parents=True)
    src = config.input.source_channels
    torch.manual_seed(seed)
    for s in range(2):
        torch.save(official_composite(s, 3 * src, 6), folder / f"latest_net_G{s}.pth")
    torch.save(official_multiscale(src + 3, 8, 2, 2), folder / "latest_net_D.pth")
    for s in range(2):
        torch.save(official_multiscale(3 * 3 + 2 * 2, 8, 2, 2), folder / f"latest_net_D_T{s}.pth")
    (folder / "opt.txt").write_text(OPT.format(label_nc=src - 1, ngf=16).replace("fg: True\n", "fg: True\n" + D_OPT))
    return folder, preset


@pytest.fixture()
def official_dir(tmp_path: Path) -> tuple[Path, Path]:
    return write_official_experiment(tmp_path, _config(), seed=0)


def test_discriminators_are_imported_into_the_model_file(official_dir, tmp_path) -> None:
    folder, preset = official_dir
    out = tmp_path / "model.pt"
    summary = import_official(folder, out, preset=preset)
    assert summary["discriminators"] and not summary["not_imported"]
    assert {"latest_net_D.pth", "latest_net_D_T0.pth", "latest_net_D_T1.pth"} <= summary["files"].keys()
    d = load_discriminators(out)
    _, config = load_generator(out)
    assert d is not None and config.discriminator.scale_widths == "official"
    assert config.discriminator.video_flow_scale == pytest.approx(0.05)
    ours = d.state_dict()
    official = torch.load(folder / "latest_net_D.pth")
    labels = config.input.source_channels
    # the coarser sub-discriminator is the wider one (ndf 8 -> 8 at full resolution, 16 at half)
    assert ours["image.nets.0.layers.0.0.weight"].shape[0] == 8 and ours["image.nets.1.layers.0.0.weight"].shape[0] == 16
    # our nets.0 (full resolution) is official scale1; first conv: official (labels, image) -> ours (image, labels)
    first = official["scale1_layer0.0.weight"]
    assert torch.equal(ours["image.nets.0.layers.0.0.weight"][:, :3], first[:, labels:])
    assert torch.equal(ours["image.nets.0.layers.0.0.weight"][:, 3:], first[:, :labels])
    assert torch.equal(ours["image.nets.1.layers.2.1.running_var"], official["scale0_layer2.1.running_var"])
    assert torch.equal(ours["image.nets.1.layers.3.bias"], official["scale0_layer3.0.bias"])
    t1 = torch.load(folder / "latest_net_D_T1.pth")
    assert torch.equal(ours["video.scales.1.nets.0.layers.0.0.weight"], t1["scale1_layer0.0.weight"])  # no reorder
    assert torch.equal(ours["video.scales.1.nets.1.layers.1.1.weight"], t1["scale0_layer1.1.weight"])
    n_official = sum(v.numel() for f in ("D", "D_T0", "D_T1")
                     for v in torch.load(folder / f"latest_net_{f}.pth").values() if v.dtype.is_floating_point)
    assert n_official == sum(v.numel() for v in ours.values() if v.dtype.is_floating_point)


def test_round_trip_every_official_tensor_is_recovered(official_dir, tmp_path) -> None:
    """From the model file back to the official layout: every tensor of every file comes back unchanged."""
    folder, preset = official_dir
    import_official(folder, tmp_path / "model.pt", preset=preset)
    ours = load_checkpoint(tmp_path / "model.pt")["discriminators"]
    labels = _config().input.source_channels
    for name, prefix in (("D", "image."), ("D_T0", "video.scales.0."), ("D_T1", "video.scales.1.")):
        original = torch.load(folder / f"latest_net_{name}.pth")
        rebuilt = {}
        for key, value in ours.items():
            if not key.startswith(prefix):
                continue
            _, net, _, layer, rest = key[len(prefix):].split(".", 4)  # nets.<n>.layers.<j>.<rest>
            i, j = 1 - int(net), int(layer)  # num_D = 2: our net n is official sub-discriminator 1 - n
            official = f"scale{i}_layer{j}." + (rest if rest[0].isdigit() else f"0.{rest}")
            if prefix == "image." and key.endswith("layers.0.0.weight"):
                value = torch.cat([value[:, 3:], value[:, :3]], dim=1)
            rebuilt[official] = value
        assert rebuilt.keys() == original.keys()
        assert all(torch.equal(rebuilt[k], original[k]) for k in original), name


@pytest.mark.parametrize("norm,flat", [("batch", False), ("batch", True), ("instance", False)])
def test_imported_discriminators_compute_what_the_official_ones_do(tmp_path, norm, flat) -> None:
    """Same outputs as the described official forward, on the inputs our trainer builds (flows scaled 1/20)."""
    config = _config(norm=norm, scale_widths="official", video_flow_scale=0.05)
    src = config.input.source_channels
    torch.manual_seed(1)
    files = {"D": official_multiscale(src + 3, 8, 2, 2, norm, flat, old_torch=flat)}
    files.update({f"D_T{s}": official_multiscale(13, 8, 2, 2, norm, flat) for s in range(2)})
    for name, state in files.items():
        torch.save(state, tmp_path / f"latest_net_{name}.pth")
    d = load_official_discriminators(config, tmp_path / "latest_net_D.pth",
                                     [tmp_path / "latest_net_D_T0.pth", tmp_path / "latest_net_D_T1.pth"]).train()
    image, labels = torch.rand(2, 3, 32, 64) * 2 - 1, torch.rand(2, src, 32, 64)
    worst = 0.0
    with torch.no_grad():
        ours = d.image(torch.cat([image, labels], 1))
        theirs = official_forward(files["D"], torch.cat([labels, image], 1), 2, 2, norm, flat)
        worst = max(worst, *((a - b).abs().max().item() for x, y in zip(ours, theirs) for a, b in zip(x, y)))
        # D_T at temporal scale 0 on the input the trainer builds: frames t-2..t, then their flows x 0.05
        trainer = Vid2VidTrainer(config)
        real = torch.rand(1, 4, 3, 32, 64) * 2 - 1
        ref = torch.randn(1, 3, 2, 32, 64) * 4  # backward flows in pixels, into frames 1..3
        [built] = trainer._video_inputs([[[1, 2, 3]]], real, real[:, 3:] * 0, [real[:, t] for t in range(3)], 3, ref)
        official_in = torch.cat([real[:, 1], real[:, 2], real[:, 3], ref[:, 1] / 20, ref[:, 2] / 20], 1)
        assert torch.allclose(built[:1], official_in)
        for s in range(2):
            ours = d.video.scales[s](official_in)
            theirs = official_forward(files[f"D_T{s}"], official_in, 2, 2, norm, flat)
            worst = max(worst, *((a - b).abs().max().item() for x, y in zip(ours, theirs) for a, b in zip(x, y)))
    assert worst < 1e-5


@pytest.mark.parametrize("damage", ["missing", "unknown", "shape", "uniform_widths"])
def test_discriminator_key_and_shape_mismatches_are_refused(official_dir, tmp_path, damage) -> None:
    folder, preset = official_dir
    path = folder / "latest_net_D_T1.pth"
    state = torch.load(path)
    if damage == "missing":
        del state["scale0_layer1.1.running_mean"]
        needles = ("latest_net_D_T1.pth", "missing 1 keys: scale0_layer1.1.running_mean")
    elif damage == "unknown":
        state["scale2_layer0.0.weight"] = torch.zeros(3)
        needles = ("latest_net_D_T1.pth", "unknown 1 keys: scale2_layer0.0.weight")
    elif damage == "shape":
        state["scale1_layer0.0.weight"] = torch.zeros(8, 12, 4, 4)
        needles = ("latest_net_D_T1.pth", "scale1_layer0.0.weight has shape (8, 12, 4, 4)")
    else:  # a file whose coarser sub-discriminator was not widened is not the official layout
        state = official_multiscale(13, 8, 2, 2)
        state.update({k: v for k, v in official_multiscale(13, 8, 2, 1).items()})  # scale0 with 8 filters
        needles = ("latest_net_D_T1.pth", "scale0_layer0.0.weight has shape (8, 13, 4, 4)")
    torch.save(state, path)
    _expect_refusal(folder, preset, tmp_path / "model.pt", *needles)


def test_incomplete_or_mismatched_discriminator_sets_are_refused(official_dir, tmp_path) -> None:
    folder, preset = official_dir
    out = tmp_path / "model.pt"
    t1 = folder / "latest_net_D_T1.pth"
    good = t1.read_bytes()
    t1.unlink()
    _expect_refusal(folder, preset, out, "missing latest_net_D_T1.pth", "2 temporal discriminator scale(s)")
    t1.write_bytes(good)
    (folder / "latest_net_D_T2.pth").write_bytes(good)
    _expect_refusal(folder, preset, out, "not in the model: latest_net_D_T2.pth")
    (folder / "latest_net_D_T2.pth").unlink()
    image = folder / "latest_net_D.pth"
    d_bytes = image.read_bytes()
    image.unlink()
    _expect_refusal(folder, preset, out, "no latest_net_D.pth")
    image.write_bytes(d_bytes[: len(d_bytes) // 2])
    _expect_refusal(folder, preset, out, "latest_net_D.pth", "truncated")
    image.write_bytes(d_bytes)
    opt = folder / "opt.txt"
    train_opt = opt.read_text()
    opt.write_text(train_opt.replace("num_D: 2", "num_D: 3"))
    _expect_refusal(folder, preset, out, "discriminators of", "discriminator.num_d: preset 2, checkpoint 3")
    # a test run rewrites opt.txt without the training-only options: the files' keys and shapes still decide
    opt.write_text(train_opt.replace(D_OPT, "ndf: 8\n"))
    assert import_official(folder, out, preset=preset)["discriminators"]
    (folder / "latest_net_D.pth").write_bytes((folder / "latest_net_D_T0.pth").read_bytes())  # D_T where D_I goes
    _expect_refusal(folder, preset, out, "latest_net_D.pth", "scale1_layer0.0.weight has shape (8, 13, 4, 4)")


def test_cli_imports_discriminators_or_leaves_them_out(official_dir, tmp_path, vid2vid) -> None:
    folder, preset = official_dir
    (folder / "latest_net_D_f.pth").write_bytes((folder / "latest_net_D.pth").read_bytes())  # pose: face D
    out = tmp_path / "with.pt"
    done = vid2vid("import-official", "--checkpoint-dir", str(folder), "--preset", str(preset), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "discriminators: imported" in done.stdout and "not imported: latest_net_D_f.pth" in done.stdout
    assert load_discriminators(out) is not None
    without = tmp_path / "without.pt"
    done = vid2vid("import-official", "--checkpoint-dir", str(folder), "--preset", str(preset), "--out", str(without),
                   "--no-discriminators")
    assert done.returncode == 0, done.stderr
    assert "discriminators: none" in done.stdout and "latest_net_D_T1.pth" in done.stdout
    assert load_discriminators(without) is None and load_checkpoint(without)["discriminators"] is None
