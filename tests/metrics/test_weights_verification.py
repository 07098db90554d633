"""Weights that cannot be mistaken: fingerprints for every entry or an explicit "unverified" label beside
every number; random or broken weights refused by checksum or by the feature probe."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
import torch

from models import weights as registry
from models.metrics.features import load_feature_network
from models.metrics.report import evaluate

from tests.metrics import standins


def test_every_entry_has_a_fingerprint_or_says_unverified():
    for spec in registry.REGISTRY.values():
        assert (spec.verification == registry.UNVERIFIED) == spec.unverified, spec.name
    assert registry.get_spec("inception_fid").sha256 == \
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
    assert registry.get_spec("i3d_rgb_imagenet").git_blob_sha1 == "73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a"
    assert {s.name for s in registry.REGISTRY.values() if s.unverified} == {"flownet2", "resnext101_kinetics",
                                                                         "inception_fid_converted"}
    with pytest.raises(ValueError, match="or unverified=True, not neither"):
        registry.WeightSpec(name="x", filename="x.pth", url="u", used_by="t")


def test_git_blob_id_is_what_git_computes(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(bytes(range(256)) * 3)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout
    assert registry.git_blob_sha1(path) == expected.strip()


def test_random_i3d_weights_never_give_a_number(tmp_path):
    standins.save_i3d(tmp_path)  # random weights under the official name: the git blob id refuses them
    with pytest.raises(registry.ChecksumMismatchError, match="git blob id 73a4fd1d"):
        load_feature_network("i3d", tmp_path)


def test_unverified_random_or_broken_weights_are_refused_by_the_feature_probe(tmp_path):
    _, spec = standins.save_inception(tmp_path)  # random init: features barely differ between inputs
    unverified = dataclasses.replace(spec, sha256=None, filename="inception-nochecksum.pth", unverified=True)
    (tmp_path / unverified.filename).write_bytes((tmp_path / spec.filename).read_bytes())
    with pytest.raises(registry.DegenerateWeightsError, match="same features for different probe inputs"):
        load_feature_network("inception", tmp_path, spec=unverified)
    nan = torch.tensor([[float("nan"), 1.0], [0.5, 2.0]])
    with pytest.raises(registry.DegenerateWeightsError, match="NaN/inf features"):
        registry.check_features(spec, tmp_path / spec.filename, nan)
    registry.check_features(spec, tmp_path / spec.filename, torch.tensor([[0.1, 1.0], [0.5, 2.0]]))  # varied: fine


def test_a_number_from_unverified_weights_carries_the_label(tmp_path):
    import numpy as np

    standins.save_resnext(tmp_path)
    rng = np.random.default_rng(0)
    videos = lambda: [rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8) for _ in range(2)]  # noqa: E731
    report = evaluate(["fid_resnext101"], tmp_path, fake_videos=videos(), real_videos=videos())
    value = report.values["fid_resnext101"]
    assert isinstance(value, str) and value.endswith(" (unverified weights)") and float(value.split()[0]) >= 0
    assert report.details["fid_resnext101"]["weights_verification"] == "unverified"


def test_weights_command_shows_fingerprints_and_unverified(tmp_path, vid2vid):
    standins.save_resnext(tmp_path)
    done = vid2vid("weights", "--weights-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") > 3}
    assert "UNVERIFIED" in lines["resnext101_kinetics"] and "missing" in lines["i3d_rgb_imagenet"]
    assert "git blob 73a4fd1d" in lines["i3d_rgb_imagenet"] and "sha256 6726825d" in lines["inception_fid"]
