"""Validated model configuration (pydantic) and the YAML preset loader.

One ``ModelConfig`` describes everything needed to rebuild the networks and resume training, so it is
stored inside checkpoints as a plain JSON-able dict (``config.model_dump(mode="json")``).
"""

from __future__ import annotations

import copy
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"

#: Cityscapes train ids of the "things" classes: person, rider, car, truck, bus, train, motorcycle, bicycle.
CITYSCAPES_FOREGROUND = (11, 12, 13, 14, 15, 16, 17, 18)
IGNORE_LABEL = 255


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


STAGE_NAME = r"^[a-z][a-z0-9_]*$"

#: What the ids of a semantic/instance stage mean (the preprocess stage records it in each shard's footer):
#: the 19 Cityscapes train ids our networks write, or the 35-class Cityscapes label ids (gtFine
#: ``*_labelIds.png``) NVIDIA's released street models read. A declared one is checked against the data.
LabelSpace = Literal["cityscapes_train_ids", "cityscapes_label_ids"]
LABEL_SPACE_CLASSES = {"cityscapes_train_ids": 19, "cityscapes_label_ids": 35}


class _Input(_Strict):
    """One generator input: which preprocessing stage's shards feed it and how its frames are encoded.

    In the spirit of imaginaire's ``input_types``: every input names itself, its stage, its channel count
    and its encoding, so training, synthesis and evaluation read the same declaration and nothing guesses.
    A new encoding (e.g. the official face's edge + distance-transform maps) is one more class in ``Input``.
    """

    name: str = Field(pattern=STAGE_NAME, description="the input's name (artifacts, error messages)")
    stage: str = Field(pattern=STAGE_NAME, description="the preprocessing stage whose shards feed it")
    channels: int = Field(ge=1, description="channels this input adds to the generator's source s_t")

    @model_validator(mode="after")
    def _not_flow(self) -> "_Input":
        if self.stage == "flow":
            raise ValueError("the flow stage is the training reference, not a generator input")
        return self


class OneHotLabels(_Input):
    """Class ids (a single-channel label map) as one channel per class; the ignore label, and any id >=
    ``num_classes``, is an all-zero row. These ids also drive the foreground prior and multimodal classes."""

    encoding: Literal["one_hot"]
    num_classes: int = Field(ge=1)
    ignore_label: int = IGNORE_LABEL
    channels: int = Field(ge=1, description="num_classes (filled in when left out)")
    label_space: LabelSpace | None = Field(None, description="what the ids mean; checked against the shards' "
                                                              "recorded label space (None: not checked)")

    @model_validator(mode="before")
    @classmethod
    def _default_channels(cls, data: object) -> object:
        if isinstance(data, dict) and "channels" not in data and "num_classes" in data:
            return {**data, "channels": data["num_classes"]}
        return data

    @model_validator(mode="after")
    def _channels(self) -> "OneHotLabels":
        if self.channels != self.num_classes:
            raise ValueError(f"input {self.name!r}: one_hot has num_classes={self.num_classes} channels, "
                             f"not {self.channels}")
        if self.label_space is not None and self.num_classes != LABEL_SPACE_CLASSES[self.label_space]:
            raise ValueError(f"input {self.name!r}: {self.label_space} are {LABEL_SPACE_CLASSES[self.label_space]} "
                             f"classes, not num_classes={self.num_classes}")
        return self


class InstanceEdges(_Input):
    """Instance ids as a one-channel boundary map (1 on both sides of every edge between two ids)."""

    encoding: Literal["instance_edges"]
    channels: int = Field(default=1, ge=1, le=1)
    label_space: LabelSpace | None = Field(None, description="what the instance ids are made of (gtFine "
                                                              "instanceIds keep stuff label ids: stuff borders "
                                                              "are edges too); None: not checked")


class Rendering(_Input):
    """An RGB-like picture the stage renders (sketch, pose limbs, the official OpenPose rendering, an image):
    uint8 payload channels scaled to [-1, 1], ``channels`` of them."""

    encoding: Literal["rendering"]
    channels: int = Field(default=3, ge=1)


class FaceEdgeDistance(Rendering):
    """NVIDIA's face encoding (``face15`` stage): edge map + 14 distance maps, read as [0, 1] (x / 255), as
    the official face loader leaves them (models/preprocess/face15.py)."""

    encoding: Literal["face_edge_distance"]  # type: ignore[assignment]
    channels: int = Field(default=15, ge=15, le=15)


class DensePoseIUV(Rendering):
    """DensePose IUV as the official pose loader reads it (``densepose`` stage, channels V, U, I): all three
    to [-1, 1], then the part index re-scaled so that 24 → 1 (models/preprocess/densepose.py)."""

    encoding: Literal["densepose_iuv"]  # type: ignore[assignment]
    channels: int = Field(default=3, ge=3, le=3)


#: Every encoding an input may declare, told apart by its ``encoding`` key.
Input = Annotated[Union[OneHotLabels, InstanceEdges, Rendering, FaceEdgeDistance, DensePoseIUV],
                  Field(discriminator="encoding")]


class InputConfig(_Strict):
    """The full training resolution and the declared generator inputs, in source-channel order."""

    width: int = Field(2048, ge=8)
    height: int = Field(1024, ge=8)
    sources: tuple[Input, ...] = (
        OneHotLabels(name="labels", stage="semantic", encoding="one_hot", num_classes=19),
        InstanceEdges(name="instance", stage="instance", encoding="instance_edges"),
    )

    @model_validator(mode="after")
    def _declared(self) -> "InputConfig":
        if not self.sources:
            raise ValueError("input.sources is empty: declare at least one generator input")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"input.sources names must be unique, got {names}")
        kinds: dict[str, set[bool]] = {}
        for spec in self.sources:
            kinds.setdefault(spec.stage, set()).add(isinstance(spec, Rendering))
        if mixed := [stage for stage, kind in kinds.items() if len(kind) > 1]:
            raise ValueError(f"stage(s) {mixed} declared both as ids and as a rendering: a stage's payload is one kind")
        if sum(isinstance(s, OneHotLabels) for s in self.sources) > 1:
            raise ValueError("at most one one_hot input: its ids are the classes of the fg prior and multimodal")
        return self

    @property
    def source_channels(self) -> int:
        return sum(s.channels for s in self.sources)

    @property
    def labels(self) -> OneHotLabels | None:
        """The class-label input (fg/bg prior, label remaps, multimodal classes), if declared."""
        return next((s for s in self.sources if isinstance(s, OneHotLabels)), None)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages feeding the declared inputs, each once, in declaration order."""
        return tuple(dict.fromkeys(s.stage for s in self.sources))

    @property
    def label_spaces(self) -> dict[str, str]:
        """{stage: declared label space} of the id inputs that declare one (checked against the shards)."""
        return {s.stage: s.label_space for s in self.sources
                if isinstance(s, (OneHotLabels, InstanceEdges)) and s.label_space is not None}


class GeneratorConfig(_Strict):
    ngf: int = Field(128, ge=1)  # filters of the coarsest scale; scale s uses ngf // 2**s
    n_downsampling: int = Field(3, ge=1)
    n_blocks: int = Field(9, ge=0)  # coarsest scale: n_blocks - n_blocks//2 shared, n_blocks//2 per branch
    n_blocks_local: int = Field(3, ge=0)  # residual blocks per branch of each finer scale
    n_scales: int = Field(3, ge=1)  # coarse-to-fine spatial scales
    n_prev: int = Field(2, ge=0)  # L: previous frames fed back; 0 = frame-by-frame
    norm: Literal["instance", "batch", "none"] = "instance"
    use_fg_prior: bool = True  # Eq. 9 (True) or Eq. 4 (False)
    use_flow_warping: bool = True  # False: the "no flow warping" ablation (H only)
    foreground_classes: tuple[int, ...] = CITYSCAPES_FOREGROUND
    flow_multiplier: float = 20.0  # scale of the flow head's raw output (official code: 20 * 2**scale)
    # "paper": Eq. 9, warp everywhere, (1-m)*w(x) + m*(m_F*H_F + m_B*H_B); "official": NVIDIA's released
    # code never warps foreground pixels, m_F*H_F + m_B*((1-m)*w(x) + m*H_B)
    composition: Literal["paper", "official"] = "paper"
    # batch norm at synthesis time: "running" averages (eval mode) or each batch's own statistics, as
    # NVIDIA's test script does (it never calls .eval(), so the released models expect "batch")
    test_norm_stats: Literal["running", "batch"] = "running"
    # False: only the finest scale has output layers, as pix2pixHD's LocalEnhancer (the 2048 street model's
    # single-frame G) drops its global part's; such a generator always runs all its scales
    coarse_outputs: bool = True


class DiscriminatorConfig(_Strict):
    ndf: int = Field(64, ge=1)
    n_layers: int = Field(3, ge=1)
    num_d: int = Field(3, ge=1)  # spatial scales of D_I and of each D_V
    norm: Literal["instance", "batch", "none"] = "instance"
    use_video_discriminator: bool = True
    n_frames_d: int = Field(3, ge=2)  # K
    n_scales_temporal: int = Field(3, ge=1)
    temporal_step_base: int | None = None  # frame step at temporal scale s is base**s; None: K
    # first-layer filters of the sub-discriminator at spatial scale k (0 = full resolution): "same": ndf for
    # every k; "official": min(64, ndf * 2**k), as NVIDIA's MultiscaleDiscriminator (coarser ones wider when ndf < 64)
    scale_widths: Literal["same", "official"] = "same"
    # factor on the flows D_V is conditioned on (pixels); NVIDIA's code feeds flow / 20, i.e. 0.05
    video_flow_scale: float = Field(1.0, gt=0.0)
    # real and fake through D in one batch ("joint") or one call each ("separate", NVIDIA's code): the same
    # with instance norm, different batch statistics with batch norm
    real_fake_batches: Literal["joint", "separate"] = "joint"
    # D_V windows per update: one random window ending in the chunk per temporal scale ("random"), or NVIDIA's
    # ("official"): every K-th window ending in the chunk, the last first, of generated frames only
    video_windows: Literal["random", "official"] = "random"


class LossConfig(_Strict):
    lambda_feat: float = 10.0  # discriminator feature matching
    lambda_vgg: float = 10.0
    use_vgg: bool = True  # VGG19 weights must then exist in the weights registry folder
    lambda_flow: float = 10.0  # lambda_W of Eq. 5
    lambda_mask: float = 0.0  # official code's occlusion-mask prior; not in the paper, off by default
    lambda_temporal_gan: float = 1.0
    # NVIDIA's training (not in the paper's equations): VGG, GAN and feature matching also on the hallucinated
    # frame h~_t (and D_I also learns it as fake)
    raw_image_losses: bool = False
    # NVIDIA's G_Warp: |x~_t - w_ref(x~_{t-1})|_1 weighted by the reference flow's confidence (their lambda_T)
    lambda_fake_warp: float = 0.0
    # the frame G_Warp warps onto a chunk's first frame: the previous output ("previous"), or, from the second
    # chunk on, the chunk's own last output ("chunk_last"): what NVIDIA's train.py computes, since its generator
    # extends the list of last outputs in place before compute_fake_B_prev reads its last frame
    fake_warp_first: Literal["previous", "chunk_last"] = "previous"
    # confidence-weighted L1 of the flow terms: sum / sum of weights ("weighted_mean") or NVIDIA's MaskedL1Loss,
    # the mean of |a*w - b*w| over every pixel ("masked_mean"); "official" flow EPE also / 2**(n_scales-1)
    masked_l1: Literal["weighted_mean", "masked_mean"] = "weighted_mean"
    flow_epe_per_scale: bool = False
    # VGG inputs: ImageNet-normalised ("imagenet") or as NVIDIA's VGGLoss takes them ("official": [-1, 1] as is,
    # halved by 2x2 average pooling while wider than 1024)
    vgg_input: Literal["imagenet", "official"] = "imagenet"


class MultimodalConfig(_Strict):
    enabled: bool = False
    instance_stage: str = Field("instance", pattern=STAGE_NAME, description="the stage whose instance ids E pools over")
    feat_nc: int = Field(3, ge=1)  # d
    nef: int = Field(16, ge=1)
    n_downsampling: int = Field(4, ge=1)
    n_components: int = Field(10, ge=1)  # Gaussian mixture components per class


class TrainConfig(_Strict):
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = Field(1, ge=1)
    frames_per_step: int = Field(4, ge=1)  # truncated backprop: frames generated between updates
    initial_seq_len: int = Field(4, ge=2)  # temporal progression: doubles every epochs_per_doubling
    max_seq_len: int = Field(30, ge=2)
    epochs_per_doubling: int = Field(5, ge=1)
    epochs_per_scale: int = Field(10, ge=1)  # spatial progression: coarse scale first
    epochs: int = Field(40, ge=1)
    seed: int = 0
    # previous outputs fed back to G: gradients flow through them inside a chunk (False) or never (True,
    # NVIDIA's n_frames_bp = 1 with --max_frames_backpropagate 1, their default)
    detach_previous: bool = False
    # G's previous frames at a coarser scale: the finest outputs pooled ("pooled") or that scale's own outputs
    # ("per_scale", NVIDIA's training and test recurrence)
    previous_frames: Literal["pooled", "per_scale"] = "pooled"
    # "paper": coarse scale first at lower resolution (epochs_per_scale), sequence length doubling within each;
    # "official" (NVIDIA's train.py): every scale at full resolution from the start, only the finest trained
    # for epochs_finest_only epochs (--niter_fix_global), generated frames doubling every epochs_per_doubling
    # (--niter_step) from initial_seq_len - n_prev (--n_frames_total), rounded down to frames_per_step chunks
    schedule: Literal["paper", "official"] = "paper"
    epochs_finest_only: int = Field(0, ge=0)
    # the last lr_decay_epochs of ``epochs`` decay G's and D's learning rate linearly towards 0 (NVIDIA's
    # --niter_decay; their D_T optimisers keep theirs); 0: constant
    lr_decay_epochs: int = Field(0, ge=0)


class OfficialInput(_Strict):
    """How one input of a released model gets its official encoding from our preprocessing: the
    ``stage=backend`` choices that produce it exactly, those that produce an approximation (another
    detector of the same kind), and a note saying what is missing (e.g. a network we cannot run)."""

    exact: tuple[str, ...] = ()
    approximate: tuple[str, ...] = ()
    note: str = ""


class OfficialRelease(_Strict):
    """The ``official`` block of a preset describing a released model (e.g. NVIDIA's label2city_2048): which
    release, and per declared input (by name) how its encoding is produced here. ``vid2vid weights`` prints
    it. A fact about the preset file, not part of ``ModelConfig``: model files and derived configs (the
    single-frame G's) never carry it."""

    release: str = Field(min_length=1)
    inputs: dict[str, OfficialInput]

    def check_inputs(self, config: "ModelConfig") -> "OfficialRelease":
        """Every declared input described, each by backends its stage offers (or a note saying why none)."""
        from models.preprocess.registry import BACKENDS, parse_choice  # the backends a stage offers (data)

        names = {s.name: s.stage for s in config.input.sources}
        if set(self.inputs) != set(names):
            raise ValueError(f"official.inputs must describe every input of input.sources {sorted(names)}, "
                             f"got {sorted(self.inputs)}")
        for name, entry in self.inputs.items():
            for choice in (*entry.exact, *entry.approximate):
                stage = choice.partition("=")[0]
                try:
                    if stage != names[name]:
                        raise ValueError(f"stage {stage!r}")
                    parse_choice(choice)
                except ValueError as exc:
                    offered = ", ".join(f"{names[name]}={b}" for b in BACKENDS.get(names[name], ()))
                    raise ValueError(f"official.inputs.{name}: {choice!r} is not a backend of stage {names[name]!r} "
                                     f"({offered}): {str(exc).splitlines()[0]}") from None
            if not (entry.exact or entry.approximate or entry.note):
                raise ValueError(f"official.inputs.{name}: name a backend (exact/approximate) or say why none (note)")
        return self


class ModelConfig(_Strict):
    name: str = "custom"
    input: InputConfig = InputConfig()
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    loss: LossConfig = LossConfig()
    multimodal: MultimodalConfig = MultimodalConfig()
    train: TrainConfig = TrainConfig()
    frame_by_frame: bool = False  # pix2pixHD-style baseline: L=0, no W/M, no D_V

    @model_validator(mode="after")
    def _consistent(self) -> "ModelConfig":
        factor = 2 ** (self.generator.n_scales - 1 + self.generator.n_downsampling)
        if self.input.width % factor or self.input.height % factor:
            raise ValueError(
                f"input {self.input.width}x{self.input.height} must be divisible by {factor} "
                f"(2**(n_scales-1+n_downsampling))"
            )
        if self.frame_by_frame and (
            self.generator.n_prev or self.generator.use_flow_warping or self.discriminator.use_video_discriminator
        ):
            raise ValueError("frame_by_frame needs generator.n_prev=0, use_flow_warping=false, use_video_discriminator=false")
        if self.generator.n_prev == 0 and self.generator.use_flow_warping:
            raise ValueError("flow warping needs at least one previous frame (generator.n_prev >= 1)")
        if self.generator.use_fg_prior and self.input.labels is None:
            raise ValueError("the foreground-background prior needs a one_hot label input in input.sources")
        if self.train.frames_per_step < 1 or self.train.initial_seq_len <= self.generator.n_prev:
            raise ValueError("train.initial_seq_len must exceed generator.n_prev")
        return self

    @property
    def data_stages(self) -> tuple[str, ...]:
        """Every stage whose shards training and synthesis read besides rgb (flow excluded): the declared
        inputs' stages, and the instance stage of a multimodal model."""
        extra = (self.multimodal.instance_stage,) if self.multimodal.enabled else ()
        return tuple(dict.fromkeys((*self.input.stages, *extra)))

    @property
    def uses_video_discriminator(self) -> bool:
        return self.discriminator.use_video_discriminator and not self.frame_by_frame

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def read_preset(name_or_path: str | os.PathLike[str], folder: Path, what: str) -> dict:
    """The YAML data of a preset (a bare name, looked up in ``folder``) or of a YAML path; a missing one is an
    error naming the presets there."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        presets = sorted(p.stem for p in folder.glob("*.yaml"))
        raise FileNotFoundError(f"no {what} {name_or_path!r} ({path}); presets: {presets}")
    return yaml.safe_load(path.read_text()) or {}


def load_model_config(name_or_path: str | os.PathLike[str], settings: Mapping[str, Any] | None = None,
                      **overrides: object) -> ModelConfig:
    """A preset name (street, face, pose, tiny) or a YAML path; ``settings`` set fields by dotted name on top
    (``{"train.lr": 1e-4}``, the CLI's ``--set``); top-level ``overrides`` are merged in. A released model's
    ``official`` block is not part of the model (``load_official`` reads it)."""
    data = read_preset(name_or_path, CONFIG_DIR, "model config")
    data.pop("official", None)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    if settings:
        data = set_fields(data, settings)
    return ModelConfig.model_validate(data)


def _section(annotation: Any) -> type[BaseModel] | None:
    """The config section class a field holds (also inside ``X | None``), or None for a plain value."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def set_fields(data: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a config as plain data) with each dotted name of ``settings`` set; a name that is not a field
    of ``ModelConfig`` is refused naming it and the fields that exist there. Values are checked by the
    validation that follows, whose errors name the dotted field."""
    out = copy.deepcopy(data)
    for dotted, value in settings.items():
        section: type[BaseModel] = ModelConfig
        target = out
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            fields = section.model_fields
            where = ".".join(parts[:depth]) or "the model config"
            if part not in fields:
                raise ValueError(f"--set {dotted}: {where} has no field {part!r}; its fields: {', '.join(fields)}")
            if depth == len(parts) - 1:
                target[part] = value
                break
            inner = _section(fields[part].annotation)
            if inner is None:
                raise ValueError(f"--set {dotted}: {'.'.join(parts[:depth + 1])} is a value, not a section")
            current = target.get(part)
            target[part] = dict(current) if isinstance(current, dict) else {}
            section, target = inner, target[part]
    return out


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-4", "generator.n_prev=1"]`` → ``{"train.lr": 0.0001, ...}``: each value read as YAML
    (numbers, booleans, lists, null); a later item of the same name wins."""
    settings: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. train.lr=0.0001), got {item!r}")
        try:
            settings[name.strip()] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return settings


def load_official(name_or_path: str | os.PathLike[str]) -> OfficialRelease | None:
    """A preset's ``official`` block, checked against the preset's declared inputs; None when the preset does
    not describe a released model. Invalid blocks are errors naming the preset."""
    data = read_preset(name_or_path, CONFIG_DIR, "model config")
    if "official" not in data:
        return None
    config = load_model_config(name_or_path)
    try:
        return OfficialRelease.model_validate(data["official"]).check_inputs(config)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"model config {name_or_path!r}: {exc}") from None
