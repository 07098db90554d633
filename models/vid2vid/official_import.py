"""Import NVIDIA's released vid2vid checkpoints (github.com/NVIDIA/vid2vid) into our model file.

The official training writes, per experiment folder, ``<epoch>_net_G<s>.pth`` (one generator per spatial
scale, s = 0 coarsest), optionally ``<epoch>_net_D.pth`` / ``_net_D_T<k>.pth`` and an ``opt.txt`` with its
command-line options; the first frame comes from a pix2pixHD single-frame generator ``latest_net_G_<size>.pth``
(street) when ``--use_single_G`` is given. Our generator keeps the official layer order inside every module
(generator.py), so a state dict maps by renaming module prefixes: the table below. Every key and shape is
checked; nothing is written unless everything matches.

Facts of the official format used here (not code): module names of CompositeGenerator /
CompositeLocalGenerator / GlobalGenerator / LocalEnhancer, ``ResnetBlock.conv_block``, instance norm saved
with (unused at test time) running statistics, and ``num_batches_tracked`` absent from files written by
PyTorch 0.4.0.

Discriminators (``<epoch>_net_D.pth`` = D_I, ``<epoch>_net_D_T<s>.pth`` = D_V at temporal scale s, frames
every n_frames_D**s; ``_net_D_f.pth`` is the pose models' face discriminator, which ours lacks): each is a
MultiscaleDiscriminator whose sub-discriminator ``scale<i>`` runs on the input downsampled num_D-1-i times
(the reverse of our ``nets.<k>``, k = times downsampled), with first-layer width min(64, ndf * 2**(num_D-1-i));
its layers are saved as ``scale<i>_layer<j>.<k>`` (feature matching on, the default) or, with
``--no_ganFeat``, as one flat ``layer<i>.<k>`` sequence. D_I sees cat(labels, image) (ours: image, labels:
the first convolutions' input channels are reordered); D_T sees cat(K frames, K-1 backward flows / 20), which
the imported config keeps with ``discriminator.video_flow_scale: 0.05``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import IMPORTED_FORMAT, save_checkpoint
from .config import ModelConfig, load_model_config
from .discriminators import Discriminators
from .generator import Vid2VidGenerator


#: our per-scale module -> the official CompositeGenerator / CompositeLocalGenerator module
_COMPOSITE = {
    "src_down": "model_down_seg",
    "img_down": "model_down_img",
    "bg_res": "model_res_img",
    "bg_up": "model_up_img",
    "bg_out": "model_final_img",
    "flow_res": "model_res_flow",
    "flow_up": "model_up_flow",
    "flow_out": "model_final_flow",
    "mask_out": "model_final_w",
    "fg_down": "indv_down",
    "fg_res": "indv_res",
    "fg_up": "indv_up",
    "fg_out": "indv_final",
}
_OPTIONAL_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
#: official option -> our DiscriminatorConfig field (the official discriminators use the generators' --norm)
_D_OPTIONS = {"ndf": "ndf", "n_layers_D": "n_layers", "num_D": "num_d", "norm": "norm", "n_frames_D": "n_frames_d",
              "n_scales_temporal": "n_scales_temporal"}
#: what the official discriminators compute besides their weights (kept in the imported config)
OFFICIAL_DISCRIMINATOR = {"scale_widths": "official", "video_flow_scale": 1 / 20, "real_fake_batches": "separate",
                          "video_windows": "official"}
#: NVIDIA's train.py recipe (scripts/compare_official_training.py): what fine-tuning an imported model uses
OFFICIAL_LOSS = {"raw_image_losses": True, "lambda_fake_warp": 10.0, "fake_warp_first": "chunk_last",
                 "masked_l1": "masked_mean", "flow_epe_per_scale": True, "vgg_input": "official"}
OFFICIAL_TRAIN = {"detach_previous": True, "previous_frames": "per_scale", "schedule": "official"}


class OfficialImportError(ValueError):
    """A released checkpoint folder that does not match the model it should load into."""


def _rename_rest(rest: str) -> str:
    return rest.replace("body.", "conv_block.")


def _split(key: str) -> tuple[int, str, int, str]:
    """'scales.1.bg_up.3.body.1.weight' -> (1, 'bg_up', 3, 'body.1.weight')."""
    _, scale, module, index, rest = key.split(".", 4)
    return int(scale), module, int(index), rest


def composite_key_map(generator: Vid2VidGenerator) -> dict[int, dict[str, str]]:
    """Per scale s (file ``G<s>``): official key -> our key, for every tensor of our generator."""
    maps: dict[int, dict[str, str]] = {}
    for key in generator.state_dict():
        scale, module, index, rest = _split(key)
        official = f"{_COMPOSITE[module]}.{index}.{_rename_rest(rest)}"
        maps.setdefault(scale, {})[official] = key
    return maps


def single_key_map(generator: Vid2VidGenerator) -> dict[str, str]:
    """pix2pixHD GlobalGenerator (1 scale: ``model.<i>``) or LocalEnhancer (2 scales: the global part
    without its output layer, then ``model1_1`` / ``model1_2``): official key -> our key."""
    if generator.n_prev or generator.use_flow or generator.use_fg or generator.n_scales > 2:
        raise OfficialImportError("a single-frame generator has no previous frames, flow, fg branch, > 2 scales")
    mapping: dict[str, str] = {}
    coarse = generator.scales[0]
    offsets = {"src_down": 0, "bg_res": len(coarse.src_down)}
    offsets["bg_up"] = offsets["bg_res"] + len(coarse.bg_res)
    offsets["bg_out"] = offsets["bg_up"] + len(coarse.bg_up)
    fine_offsets = {"src_down": 0, "bg_up": 0, "bg_out": len(generator.scales[-1].bg_up)}
    for key in generator.state_dict():
        scale, module, index, rest = _split(key)
        if generator.n_scales == 1:
            official = f"model.{offsets[module] + index}"
        elif scale == 0:  # the LocalEnhancer's global part (its output layer dropped: generator.coarse_outputs)
            official = f"model.{offsets[module] + index}"
        else:
            name = "model1_1" if module == "src_down" else "model1_2"
            official = f"{name}.{fine_offsets[module] + index}"
        mapping[f"{official}.{_rename_rest(rest)}"] = key
    return mapping


def read_official_state(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict of tensors, read without unpickling code; clear error otherwise."""
    if not path.is_file():
        raise OfficialImportError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types for a bad file
        raise OfficialImportError(f"{path}: not a readable PyTorch checkpoint (truncated or another file?): "
                                  f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialImportError(f"{path}: not a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def map_state(
    path: Path, state: Mapping[str, torch.Tensor], key_map: Mapping[str, str], ours: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Our tensors from one official file: every expected key present with our shape, nothing unknown.

    Running statistics of official instance-norm layers (which ours do not keep; the official test
    normalises each image by its own statistics) and ``num_batches_tracked`` may be absent or extra.
    """
    out: dict[str, torch.Tensor] = {}
    missing = []
    for official, key in key_map.items():
        if official in state:
            tensor = state[official]
            if tuple(tensor.shape) != tuple(ours[key].shape):
                raise OfficialImportError(
                    f"{path}: {official} has shape {tuple(tensor.shape)}, the model expects {tuple(ours[key].shape)}"
                )
            out[key] = tensor.to(ours[key].dtype)
        elif official.endswith(".num_batches_tracked"):
            out[key] = ours[key].clone()
        else:
            missing.append(official)
    unknown = []
    for official in state:
        if official in key_map:
            continue
        if official.endswith(_OPTIONAL_BUFFERS) and official.rsplit(".", 1)[0] + ".weight" not in state:
            continue  # an affine-free (instance) norm layer's statistics: not used by the official test
        unknown.append(official)
    if missing or unknown:
        raise OfficialImportError(
            f"{path}: does not match the model: missing {_listing(missing)}; unknown {_listing(unknown)}"
        )
    return out


def _listing(keys: list[str], limit: int = 6) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{len(keys)} keys: " + ", ".join(sorted(keys)[:limit]) + more


def load_official_state(
    module: nn.Module,
    files: Mapping[Path, Mapping[str, str]],
    transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> None:
    """Fill ``module`` from official files (path -> official key -> our key); all checked before any copy.
    ``transforms``: our key -> how the official tensor becomes ours (same shape, e.g. reordered channels)."""
    ours = module.state_dict()
    merged: dict[str, torch.Tensor] = {}
    for path, key_map in files.items():
        merged.update(map_state(path, read_official_state(path), key_map, ours))
    for key, transform in (transforms or {}).items():
        if key in merged:
            merged[key] = transform(merged[key])
    absent = sorted(set(ours) - set(merged))
    if absent:
        raise OfficialImportError(f"no file provides {_listing(absent)}")
    module.load_state_dict(merged, strict=True)


# ------------------------------------------------------------------------------------ discriminators


def multiscale_key_map(ours: Mapping[str, torch.Tensor], prefix: str, num_d: int, layout: str) -> dict[str, str]:
    """One official MultiscaleDiscriminator file: official key -> our key under ``prefix`` (``image.`` or
    ``video.scales.<s>.``). ``layout``: "intermediate" (``scale<i>_layer<j>.<k>``) or "flat" (``layer<i>.<k>``)."""
    mapping: dict[str, str] = {}
    for key in ours:
        if not key.startswith(prefix):
            continue
        net, layer, rest = re.fullmatch(r"nets\.(\d+)\.layers\.(\d+)\.(.+)", key[len(prefix):]).groups()  # type: ignore[union-attr]
        i, j = num_d - 1 - int(net), int(layer)  # official sub-discriminator i runs after num_d-1-i downsamplings
        k, param = rest.split(".", 1) if rest[0].isdigit() else ("0", rest)  # the last layer is a bare conv
        if layout == "intermediate":
            official = f"scale{i}_layer{j}.{k}.{param}"
        else:
            start = 0 if j == 0 else 2 + 3 * (j - 1)  # [conv, lrelu], then [conv, norm, lrelu]s, then conv
            official = f"layer{i}.{start + int(k)}.{param}"
        mapping[official] = key
    return mapping


def _layout(path: Path) -> str:
    keys = read_official_state(path).keys()
    return "flat" if keys and all(re.match(r"layer\d+\.", k) for k in keys) else "intermediate"


def discriminator_files(folder: Path, epoch: str, config: ModelConfig) -> tuple[Path, list[Path]] | None:
    """(``<epoch>_net_D.pth``, [``<epoch>_net_D_T<s>.pth`` per temporal scale]) when the folder has them, None when
    it has no discriminator at all; a partial or mismatched set is an error naming the files."""
    image = folder / f"{epoch}_net_D.pth"
    found = {int(m.group(1)): p for p in folder.glob(f"{epoch}_net_D_T*.pth")
             if (m := re.fullmatch(rf"{re.escape(epoch)}_net_D_T(\d+)\.pth", p.name))}
    if not image.is_file() and not found:
        return None
    if not image.is_file():
        raise OfficialImportError(f"{folder}: has {', '.join(sorted(p.name for p in found.values()))} but no {image.name}")
    n_temporal = config.discriminator.n_scales_temporal if config.uses_video_discriminator else 0
    missing = [f"{epoch}_net_D_T{s}.pth" for s in range(n_temporal) if s not in found]
    extra = sorted(p.name for s, p in found.items() if s >= n_temporal)
    if missing or extra:
        raise OfficialImportError(
            f"{folder}: the model has {n_temporal} temporal discriminator scale(s) (preset {config.name!r}); "
            + "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                          f"not in the model: {', '.join(extra)}" if extra else "") if part))
    return image, [found[s] for s in range(n_temporal)]


def check_discriminator_preset(config: ModelConfig, options: Mapping[str, str], where: Path) -> None:
    """The preset's discriminator section must be the one the official training used, as far as ``opt.txt``
    says: a test run rewrites it without the training-only options (num_D, n_layers_D, n_frames_D,
    n_scales_temporal), and those are then checked by the files' keys and shapes alone."""
    have = config.discriminator.model_dump()
    diffs = []
    for option, field in _D_OPTIONS.items():
        if option not in options:
            continue
        want: Any = options[option] if field == "norm" else int(options[option])
        if have[field] != want:
            diffs.append(f"discriminator.{field}: preset {have[field]!r}, checkpoint {want!r}")
    if diffs:
        raise OfficialImportError(f"preset {config.name!r} does not match the discriminators of {where}: " + "; ".join(diffs))


def load_official_discriminators(config: ModelConfig, image: Path, temporal: list[Path]) -> Discriminators:
    """Our D_I and D_V from the official files, every key and shape checked; nothing is half-filled."""
    d = config.discriminator
    discriminators = Discriminators(config)
    ours = discriminators.state_dict()
    files = {image: multiscale_key_map(ours, "image.", d.num_d, _layout(image))}
    for s, path in enumerate(temporal):
        files[path] = multiscale_key_map(ours, f"video.scales.{s}.", d.num_d, _layout(path))
    labels = config.input.source_channels

    def image_first(weight: torch.Tensor) -> torch.Tensor:  # official cat(labels, image) -> ours cat(image, labels)
        return torch.cat([weight[:, labels:], weight[:, :labels]], dim=1)

    first_convs = {f"image.nets.{n}.layers.0.0.weight": image_first for n in range(d.num_d)}
    load_official_state(discriminators, files, first_convs)
    return discriminators


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- options


def read_options(path: Path) -> dict[str, str]:
    """``opt.txt`` as the official training writes it: ``name: value`` lines between two banner lines."""
    options: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", line.strip())
        if match:
            options[match.group(1)] = match.group(2).strip()
    if "n_frames_G" not in options or "ngf" not in options:
        raise OfficialImportError(f"{path}: not a vid2vid opt.txt (no n_frames_G / ngf options)")
    return options


def _flag(value: str) -> bool:
    return value.strip() == "True"


def generator_options(options: Mapping[str, str]) -> dict[str, Any]:
    """Our generator fields implied by the official options (architecture only; semantics: official)."""
    no_flow = _flag(options.get("no_flow", "False")) or _flag(options.get("openpose_only", "False"))
    fields: dict[str, Any] = {
        "ngf": int(options["ngf"]),
        "n_downsampling": int(options.get("n_downsample_G", "3")),
        "n_blocks": int(options.get("n_blocks", "9")),
        "n_blocks_local": int(options.get("n_blocks_local", "3")),
        "n_scales": int(options.get("n_scales_spatial", "1")),
        "n_prev": int(options["n_frames_G"]) - 1,
        "norm": options.get("norm", "batch"),
        "use_fg_prior": _flag(options.get("fg", "False")),
        "use_flow_warping": not no_flow,
    }
    if fields["use_fg_prior"]:
        fields["foreground_classes"] = tuple(int(v) for v in re.findall(r"-?\d+", options.get("fg_labels", "26")))
    return fields


def source_channels(options: Mapping[str, str]) -> int:
    """Channels of one source frame: label ids one-hot (or input_nc channels), plus instance edges."""
    label_nc = int(options.get("label_nc", "0"))
    per_frame = label_nc if label_nc else int(options.get("input_nc", "3"))
    return per_frame + int(_flag(options.get("use_instance", "False")))


def check_preset(config: ModelConfig, options: Mapping[str, str], where: Path) -> None:
    """The preset must describe the checkpoint's architecture; name every field that differs."""
    want = generator_options(options)
    have = config.generator.model_dump()
    diffs = [f"generator.{k}: preset {have[k]!r}, checkpoint {v!r}" for k, v in want.items()
             if (tuple(have[k]) if isinstance(have[k], (list, tuple)) else have[k]) != v]
    if config.input.source_channels != source_channels(options):
        diffs.append(f"source channels: preset {config.input.source_channels}, checkpoint {source_channels(options)}")
    if diffs:
        raise OfficialImportError(f"preset {config.name!r} does not match {where}: " + "; ".join(diffs))


# ------------------------------------------------------------------------------------ single-frame G


def single_frame_config(config: ModelConfig, load_size: int) -> ModelConfig:
    """The pix2pixHD generator the street models use for their first frames (labels only, instance
    norm): 1024-wide and smaller a GlobalGenerator (ngf 64; 3 downsamplings at 512, 4 at 1024), 2048 a
    LocalEnhancer (global ngf 64, 4 downsamplings, one enhancer of ngf 32)."""
    if load_size not in (512, 1024, 2048):
        raise OfficialImportError(f"no official single-frame generator for loadSize {load_size} (512, 1024, 2048)")
    data = config.to_dict()
    inputs = data["input"]
    if "sources" in inputs:
        inputs["sources"] = [s for s in inputs["sources"] if s.get("encoding") != "instance_edges"]
    else:
        inputs["use_instance"] = False
    data["generator"] = {
        **data["generator"],
        "ngf": 64,
        "n_downsampling": 3 if load_size == 512 else 4,
        "n_blocks": 9,
        "n_blocks_local": 3,
        "n_scales": 2 if load_size == 2048 else 1,
        "n_prev": 0,
        "norm": "instance",
        "use_fg_prior": False,
        "use_flow_warping": False,
        "coarse_outputs": load_size != 2048,  # the LocalEnhancer's global part has no output layer
    }
    data["frame_by_frame"] = True
    data["discriminator"] = {**data["discriminator"], "use_video_discriminator": False}
    data["multimodal"] = {**data["multimodal"], "enabled": False}
    data["name"] = f"{config.name}_single"
    return ModelConfig.model_validate(data)


# ------------------------------------------------------------------------------------------- import


def generator_files(checkpoint_dir: Path, epoch: str, n_scales: int) -> list[Path]:
    """``<epoch>_net_G0.pth`` ... one per scale; a missing one or one too many is an error."""
    files = [checkpoint_dir / f"{epoch}_net_G{s}.pth" for s in range(n_scales)]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise OfficialImportError(f"{checkpoint_dir}: missing {', '.join(missing)} ({n_scales} scales expected)")
    extra = checkpoint_dir / f"{epoch}_net_G{n_scales}.pth"
    if extra.is_file():
        raise OfficialImportError(f"{extra}: the checkpoint has more scales than the {n_scales} of the model")
    return files


def import_official(
    checkpoint_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str | os.PathLike[str] | None = None,
    epoch: str = "latest",
    single_frame: str | os.PathLike[str] | None = None,
    discriminators: bool = True,
) -> dict[str, Any]:
    """Read an official experiment folder and write our model file (atomically; nothing on error).

    The architecture comes from ``preset`` (checked against ``opt.txt`` when present) or, without a preset,
    from the preset named like the experiment in ``opt.txt``. ``single_frame`` is the pix2pixHD first-frame
    generator (default: ``<epoch>_net_G_<loadSize>.pth`` beside the others, when present). The discriminators
    (D_I and every D_T) are imported when the folder has them, for fine-tuning (``vid2vid train --init-from``);
    ``discriminators=False`` leaves them out. Returns a summary.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise OfficialImportError(f"{folder}: no such checkpoint folder")
    opt_path = folder / "opt.txt"
    options = read_options(opt_path) if opt_path.is_file() else None
    if preset is None:
        if options is None:
            raise OfficialImportError(f"{folder}: no opt.txt; name the architecture with --preset")
        preset = options.get("name", "")
    try:
        preset_config = load_model_config(preset)
    except FileNotFoundError as error:
        raise OfficialImportError(str(error)) from error
    data = preset_config.to_dict()  # released models: official composition, per-image batch statistics
    data["generator"] = {**data["generator"], "composition": "official", "test_norm_stats": "batch"}
    data["discriminator"] = {**data["discriminator"], **OFFICIAL_DISCRIMINATOR}
    data["loss"] = {**data["loss"], **OFFICIAL_LOSS}
    data["train"] = {**data["train"], **OFFICIAL_TRAIN}
    config = ModelConfig.model_validate(data)
    d_files = discriminator_files(folder, epoch, config) if discriminators else None
    if options is not None:
        check_preset(config, options, opt_path)
        if d_files is not None:
            check_discriminator_preset(config, options, opt_path)
    generator = Vid2VidGenerator(config)
    files = generator_files(folder, epoch, config.generator.n_scales)
    load_official_state(generator, dict(zip(files, composite_key_map(generator).values(), strict=True)))
    provenance = {p.name: sha256(p) for p in files}

    single_state = None
    load_size = int(options.get("loadSize", config.input.width)) if options else config.input.width
    single_path = Path(single_frame) if single_frame is not None else folder / f"{epoch}_net_G_{load_size}.pth"
    if single_frame is not None or single_path.is_file():
        single = Vid2VidGenerator(single_frame_config(config, load_size))
        load_official_state(single, {single_path: single_key_map(single)})
        single_state = {"config": single.config.to_dict(), "generator": single.state_dict()}
        provenance[single_path.name] = sha256(single_path)
    d_state = None
    if d_files is not None:
        image, temporal = d_files
        d_state = load_official_discriminators(config, image, temporal).state_dict()
        provenance.update({p.name: sha256(p) for p in (image, *temporal)})
    ignored = sorted(p.name for p in folder.glob(f"{epoch}_net_D*.pth") if p.name not in provenance)
    payload = {
        "format": IMPORTED_FORMAT,
        "config": config.to_dict(),
        "epoch": 0,
        "step": 0,
        "generator": generator.state_dict(),
        "single_frame": single_state,
        "discriminators": d_state,
        "source": {"checkpoint_dir": str(folder.resolve()), "files": provenance},
    }
    path = save_checkpoint(out, payload)
    return {"out": str(path), "preset": config.name, "files": provenance, "single_frame": single_state is not None,
            "discriminators": d_state is not None, "not_imported": ignored}


def load_single_frame(path: str | os.PathLike[str]) -> Vid2VidGenerator | None:
    """The imported first-frame generator stored in a model file (eval mode), if it has one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    single = state.get("single_frame")
    if not single:
        return None
    generator = Vid2VidGenerator(ModelConfig.model_validate(single["config"]))
    generator.load_state_dict(single["generator"])
    return generator.eval()
