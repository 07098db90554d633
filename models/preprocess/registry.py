"""Which backends exist per stage, their settings as validated data, and how one is built for a clip."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Stage = Literal["semantic", "instance", "flow", "sketch", "pose", "face15", "densepose", "openpose"]
STAGES: tuple[str, ...] = ("semantic", "instance", "flow", "sketch", "pose", "face15", "densepose", "openpose")
# what `preprocess` runs when no stages are named; the official encodings' stages run when asked for (or when a
# model declares them, in the rebuild)
DEFAULT_STAGES: tuple[str, ...] = ("semantic", "instance", "flow", "sketch", "pose")
BACKENDS: dict[str, tuple[str, ...]] = {
    "semantic": ("torchvision", "mmseg", "dataset", "cityscapes"),
    "instance": ("torchvision", "mmdet", "coco_rle", "dataset", "cityscapes"),
    "flow": ("dis", "raft", "flownet2", "dataset"),
    "sketch": ("mediapipe",),
    "pose": ("mediapipe", "openpose"),
    # the official vid2vid face encoding: 68 landmarks from mediapipe (mapped) or imported (dlib) files
    "face15": ("mediapipe", "landmarks"),
    # DensePose IUV: import only (no DensePose network runs here)
    "densepose": ("iuv",),
    # OpenPose body + hands + face drawn the official way, from OpenPose's JSON
    "openpose": ("json",),
}
DEFAULT_BACKENDS: dict[str, str] = {"semantic": "torchvision", "instance": "torchvision", "flow": "dis",
                                    "sketch": "mediapipe", "pose": "mediapipe", "face15": "mediapipe",
                                    "densepose": "iuv", "openpose": "json"}
# Backends that read what another tool made (files under import_dir) instead of computing it from the frames.
IMPORT_BACKENDS = frozenset({"coco_rle", "openpose", "cityscapes", "landmarks", "iuv", "json"})
# The options each backend declares: anything else given for it is refused (a misspelt or misplaced option
# would otherwise be silently ignored). All but import_dir go into the shard fingerprint.
OPTIONS: dict[str, tuple[str, ...]] = {
    "torchvision": ("arch", "score_threshold"), "dis": ("preset",), "raft": ("raft_iterations",),
    "mmseg": ("model", "label_space"), "mmdet": ("model", "score_threshold"),
    "coco_rle": ("import_dir", "score_threshold"), "openpose": ("import_dir",), "cityscapes": ("import_dir", "suffix"),
    "landmarks": ("import_dir", "source_size"),
    "iuv": ("import_dir",), "json": ("import_dir", "source_size"),
}
# options added to an existing backend after its shards were written: fingerprinted only when not at their
# default, so the shards made before stay current
_LATER_OPTIONS = ("label_space",)
# bumped when a backend's output for the same input and settings changes (part of the fingerprint)
CODE_VERSION = "preprocess/1"


class BackendSettings(BaseModel):
    """One stage's backend and its knobs; unknown backends and options it does not declare are refused."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(description="the stage's backend (see `vid2vid preprocess --help`)")
    arch: Literal["resnet50", "resnet101"] = Field("resnet50", description="torchvision DeepLabV3 backbone")
    preset: Literal["ultrafast", "fast", "medium"] = Field("medium", description="DIS preset")
    model: str | None = Field(None, description="mmseg/mmdet model name (default: the Cityscapes one)")
    import_dir: str | None = Field(None, description="coco_rle: <dir>/<clip>.json; openpose, json: "
                                   "<dir>/<clip>/*_keypoints.json; cityscapes: <dir>/**/<clip>_<frame>_*labelIds.png "
                                   "(instance: *instanceIds.png); landmarks: <dir>/<clip>/*.txt; iuv: <dir>/<clip>/*.png")
    score_threshold: float = Field(0.5, ge=0, le=1, description="detection score below which instances are dropped")
    raft_iterations: int = Field(12, ge=1, description="RAFT refinement iterations (flow backend raft)")
    source_size: tuple[int, int] | None = Field(
        None, description="json, landmarks: the frame size WxH the keypoints were found at (default: the clip's)")
    suffix: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]+$",
                               description="cityscapes: the files' name ending (default labelIds.png / instanceIds.png)")
    label_space: Literal["cityscapes_train_ids", "cityscapes_label_ids"] = Field(
        "cityscapes_train_ids", description="mmseg: write the network's train ids, or them mapped to label ids")

    @field_validator("source_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if isinstance(value, str):
            from storage.video import parse_size

            return parse_size(value, "source_size")
        return value

    @model_validator(mode="after")
    def _declared_options(self) -> "BackendSettings":
        known = sorted({b for names in BACKENDS.values() for b in names})
        if self.backend not in known:
            raise ValueError(f"unknown backend {self.backend!r}; backends: {', '.join(known)}")
        declared = OPTIONS.get(self.backend, ())
        # a field left at its default is not an option given (forms and JSON round trips carry every field)
        stray = sorted(k for k in self.model_fields_set - {"backend", *declared}
                       if getattr(self, k) != type(self).model_fields[k].default)
        if stray:
            raise ValueError(f"backend {self.backend!r} has no option {', '.join(map(repr, stray))}; its options: "
                             f"{', '.join(declared) or 'none'}")
        return self

    def fingerprint_config(self) -> dict[str, Any]:
        keys = [k for k in OPTIONS.get(self.backend, ()) if k != "import_dir" and
                (k not in _LATER_OPTIONS or getattr(self, k) != type(self).model_fields[k].default)]
        return {"backend": self.backend, **{k: getattr(self, k) for k in keys}}


def parse_choice(choice: str) -> tuple[str, str, dict[str, str]]:
    """``stage=backend[:key=value,...]`` (the CLI's --backend form) -> (stage, backend, options); an unknown
    stage, backend or option is a ValueError naming it."""
    stage, _, spec = choice.partition("=")
    backend, _, text = spec.partition(":")
    options = dict(item.partition("=")[::2] for item in filter(None, text.split(",")))
    check_backend(stage, backend)
    BackendSettings(backend=backend, **options)
    return stage, backend, options


def check_backend(stage: str, backend: str) -> None:
    if stage not in BACKENDS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if backend not in BACKENDS[stage]:
        raise ValueError(f"unknown {stage} backend {backend!r}; choose one of {', '.join(BACKENDS[stage])}")


def label_space(stage: str, settings: BackendSettings) -> str | None:
    """The label space a semantic/instance backend writes (recorded in the shard's footer); None for other
    stages. Only the cityscapes importer writes Cityscapes label ids; every other backend train ids."""
    if stage not in ("semantic", "instance"):
        return None
    return "cityscapes_label_ids" if settings.backend == "cityscapes" else settings.label_space


def import_files(stage: str, settings: BackendSettings, clip_id: str) -> list[Path]:
    """The files an importer reads for one clip (their content is part of the shard's fingerprint)."""
    if not settings.import_dir or settings.backend not in IMPORT_BACKENDS:
        return []
    base = Path(settings.import_dir)
    if settings.backend == "coco_rle":
        return [base / f"{clip_id}.json"]
    if settings.backend == "cityscapes":
        from models.preprocess.cityscapes import default_suffix, import_candidates

        numbered, ordered = import_candidates(base, clip_id, settings.suffix or default_suffix(stage))
        return [numbered[n] for n in sorted(numbered)] + ordered
    pattern = {"openpose": "*_keypoints.json", "json": "*_keypoints.json", "landmarks": "*.txt", "iuv": "*.png"}
    return sorted((base / clip_id).glob(pattern[settings.backend]))


def build(stage: str, settings: BackendSettings, clip_id: str, *, weights_dir: str | os.PathLike[str] | None = None,
          device: str = "cpu", resolution: tuple[int, int] | None = None) -> Any:
    """A ready backend for one clip. Stateless networks are cached per process (loaded once per worker)."""
    check_backend(stage, settings.backend)
    name = settings.backend
    if name in IMPORT_BACKENDS:
        if not settings.import_dir:
            raise ValueError(f"the {name} importer needs import_dir")
        folder = Path(settings.import_dir) / clip_id
        if name == "coco_rle":
            from models.preprocess.instance import CocoRLEImport
            return CocoRLEImport(Path(settings.import_dir) / f"{clip_id}.json", settings.score_threshold)
        if name == "cityscapes":
            from models.preprocess.cityscapes import CityscapesImport
            return CityscapesImport(Path(settings.import_dir), clip_id, stage, settings.suffix)
        if name == "landmarks":
            from models.preprocess.face15 import LandmarksFace15
            return LandmarksFace15(folder, settings.source_size)
        if name == "iuv":
            from models.preprocess.densepose import DensePoseIUVImport
            return DensePoseIUVImport(folder)
        if name == "json":
            from models.preprocess.openpose_official import OfficialOpenPoseImport
            return OfficialOpenPoseImport(folder, settings.source_size)
        from models.preprocess.pose import OpenPoseImport
        return OpenPoseImport(folder)
    if stage == "face15":
        from models.preprocess.face15 import MediapipeFace15
        return MediapipeFace15()
    if stage == "sketch":
        from models.preprocess.sketch import MediapipeFaceSketch
        return MediapipeFaceSketch()
    if stage == "pose":
        from models.preprocess.pose import MediapipePose
        return MediapipePose()
    weights = None if weights_dir is None else str(weights_dir)
    return _cached(stage, settings.model_dump_json(), weights, device, resolution)


@lru_cache(maxsize=4)
def _cached(stage: str, settings_json: str, weights_dir: str | None, device: str,
            resolution: tuple[int, int] | None) -> Any:
    settings = BackendSettings.model_validate_json(settings_json)
    name = settings.backend
    if stage == "flow" and name == "dis":
        from models.preprocess.flow_dis import DISFlow
        return DISFlow(settings.preset, resolution)
    if stage == "flow" and name == "raft":
        from models.preprocess.flow_nets import RAFTFlow
        return RAFTFlow(weights_dir, device, resolution, settings.raft_iterations)
    if stage == "flow" and name == "flownet2":
        from models.preprocess.flow_nets import FlowNet2Flow
        return FlowNet2Flow(weights_dir, device, resolution)
    if stage == "semantic" and name == "torchvision":
        from models.preprocess.semantic import TorchvisionDeepLab
        return TorchvisionDeepLab(settings.arch, weights_dir, device, resolution)
    if stage == "semantic" and name == "mmseg":
        from models.preprocess.semantic import MMSegSemantic
        return MMSegSemantic(settings.model or "deeplabv3_r50_cityscapes", weights_dir, device, resolution,
                             settings.label_space)
    if stage == "instance" and name == "torchvision":
        from models.preprocess.instance import TorchvisionMaskRCNN
        return TorchvisionMaskRCNN(weights_dir, device, resolution, settings.score_threshold)
    if stage == "instance" and name == "mmdet":
        from models.preprocess.instance import MMDetMaskRCNN
        return MMDetMaskRCNN(settings.model or "mask_rcnn_r50_cityscapes", weights_dir, device, resolution,
                             settings.score_threshold)
    raise ValueError(f"{stage} backend {name!r} is not a computed backend")
