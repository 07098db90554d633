"""Feature networks loaded through the weights registry from stand-in checkpoints in the official layouts."""

import dataclasses

import pytest
import torch

from models import weights as registry
from models.metrics.features import load_feature_network
from models.metrics.i3d import InceptionI3d
from models.metrics.inception import FIDInceptionV3
from models.metrics.resnext3d import resnext101
from tests.metrics import standins


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights")
    models = {
        "i3d": standins.save_i3d(directory, drop_batch_counters=True),
        "resnext101": standins.save_resnext(directory),
    }
    models["inception"], inception_spec = standins.save_inception(directory)
    return directory, models, {"inception": inception_spec, "i3d": standins.registered("i3d_rgb_imagenet", directory)}


def _same_features(extractor, reference, x):
    with torch.inference_mode():
        expected = reference.eval().features(x)
    got = extractor(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    return got


def test_i3d_standin_loads_and_gives_1024_features(weights_dir):
    directory, models, specs = weights_dir
    with pytest.raises(registry.ChecksumMismatchError, match="git blob id"):  # not the official file
        load_feature_network("i3d", directory)
    extractor = load_feature_network("i3d", directory, spec=specs["i3d"])
    assert extractor.pretrained and extractor.weights_file.endswith("rgb_imagenet.pt")
    x = torch.randn(1, 3, 8, 64, 64)
    assert _same_features(extractor, models["i3d"], x).shape == (1, 1024)
    assert not torch.equal(extractor(x), InceptionI3d().eval().features(x))


def test_resnext_standin_with_module_prefix_loads_and_gives_2048_features(weights_dir):
    directory, models, _ = weights_dir
    extractor = load_feature_network("resnext101", directory)  # unverified: loads after passing the probe
    assert extractor.verification == "unverified"
    x = torch.randn(1, 3, 16, 112, 112)
    assert _same_features(extractor, models["resnext101"], x).shape == (1, 2048)


def test_inception_standin_needs_its_registered_checksum(weights_dir):
    directory, models, specs = weights_dir
    with pytest.raises(registry.ChecksumMismatchError):  # file name says 6726825d..., the stand-in differs
        load_feature_network("inception", directory)
    extractor = load_feature_network("inception", directory, spec=specs["inception"])
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    assert _same_features(extractor, models["inception"], x).shape == (2, 2048)


def test_wrong_sha_is_refused(weights_dir):
    directory, _, _ = weights_dir
    spec = dataclasses.replace(registry.get_spec("i3d_rgb_imagenet"), sha256="0" * 64)
    with pytest.raises(registry.ChecksumMismatchError):
        load_feature_network("i3d", directory, spec=spec)


def test_wrong_keys_and_missing_file_are_refused(tmp_path):
    i3d_state = InceptionI3d().state_dict()
    torch.save({"state_dict": i3d_state}, tmp_path / "resnext-101-kinetics.pth")
    with pytest.raises(registry.KeyLayoutError):
        load_feature_network("resnext101", tmp_path)
    del i3d_state["Mixed_4b.b0.conv3d.weight"]  # required keys present, but not every key
    torch.save(i3d_state, tmp_path / "rgb_imagenet.pt")
    with pytest.raises(registry.KeyLayoutError, match="Mixed_4b.b0.conv3d.weight"):
        load_feature_network("i3d", tmp_path, spec=standins.registered("i3d_rgb_imagenet", tmp_path))
    with pytest.raises(registry.MissingWeightsError, match="pt_inception-2015-12-05"):
        load_feature_network("inception", tmp_path / "empty")


def test_extractor_stays_in_eval_mode(weights_dir):
    directory, _, specs = weights_dir
    extractor = load_feature_network("i3d", directory, spec=specs["i3d"])
    x = torch.randn(2, 3, 4, 32, 32)
    before = extractor(x)
    extractor.module.train()
    torch.testing.assert_close(extractor(x), before, rtol=0, atol=0)
    assert not extractor.module.training


@pytest.mark.parametrize(("build", "key", "shape"), [
    (InceptionI3d, "Conv3d_1a_7x7.conv3d.weight", (64, 3, 7, 7, 7)),
    (InceptionI3d, "Mixed_4f.b1b.conv3d.weight", (320, 160, 3, 3, 3)),
    (InceptionI3d, "Mixed_5c.b3b.bn.running_var", (128,)),
    (InceptionI3d, "logits.conv3d.weight", (400, 1024, 1, 1, 1)),
    (InceptionI3d, "logits.conv3d.bias", (400,)),
    (resnext101, "conv1.weight", (64, 3, 7, 7, 7)),
    (resnext101, "layer1.0.downsample.0.weight", (256, 64, 1, 1, 1)),
    (resnext101, "layer3.22.conv2.weight", (512, 16, 3, 3, 3)),
    (resnext101, "layer4.2.conv3.weight", (2048, 1024, 1, 1, 1)),
    (resnext101, "fc.weight", (400, 2048)),
    (FIDInceptionV3, "Conv2d_1a_3x3.conv.weight", (32, 3, 3, 3)),
    (FIDInceptionV3, "Mixed_6e.branch7x7dbl_5.conv.weight", (192, 192, 1, 7)),
    (FIDInceptionV3, "Mixed_7c.branch_pool.conv.weight", (192, 2048, 1, 1)),
    (FIDInceptionV3, "fc.weight", (1008, 2048)),
])
def test_official_key_names_and_shapes(build, key, shape):
    state = _states(build)
    assert tuple(state[key].shape) == shape


_STATE_CACHE: dict = {}


def _states(build):
    if build not in _STATE_CACHE:
        _STATE_CACHE[build] = dict(build().state_dict())
    return _STATE_CACHE[build]


def test_registry_required_keys_exist_in_our_modules():
    for build, name in ((InceptionI3d, "i3d_rgb_imagenet"), (FIDInceptionV3, "inception_fid")):
        assert set(registry.get_spec(name).required_keys) <= set(_states(build))
    ours = {f"module.{k}" for k in _states(resnext101)}
    assert set(registry.get_spec("resnext101_kinetics").required_keys) <= ours
