"""The mask predictor's configuration: strict pydantic, loaded from ``configs/predictor/<name>.yaml``.

Stored inside predictor checkpoints as plain data, so a checkpoint rebuilds its own network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.vid2vid.config import CITYSCAPES_FOREGROUND, IGNORE_LABEL, read_preset

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "predictor"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictorInput(_Strict):
    """The label maps the predictor reads and writes, at the resolution it runs at."""

    width: int = Field(256, ge=8)
    height: int = Field(128, ge=8)
    num_classes: int = Field(19, ge=2)
    ignore_label: int = IGNORE_LABEL
    use_instance: bool = True  # instance boundaries enter the network; the instance map is carried forward
    foreground_classes: tuple[int, ...] = CITYSCAPES_FOREGROUND  # classes that hold instances


class PredictorNetwork(_Strict):
    nf: int = Field(32, ge=1)
    n_downsampling: int = Field(3, ge=1)
    n_blocks: int = Field(3, ge=0)
    norm: Literal["instance", "batch", "none"] = "instance"
    flow_norm: float = Field(8.0, gt=0, description="pixels per unit of the flow inputs and of the flow head")


class PredictorLoss(_Strict):
    lambda_warp: float = Field(1.0, ge=0, description="cross-entropy of the flow-warped last map alone (non-occluded)")
    lambda_flow: float = Field(0.1, ge=0, description="end-point error against the reference backward flow")


class PredictorTrain(_Strict):
    lr: float = Field(1e-3, gt=0)
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = Field(2, ge=1)
    rollout: int = Field(2, ge=1, description="future frames per sample; later ones are predicted from predictions")
    epochs: int = Field(10, ge=1)
    stride: int = Field(1, ge=1, description="frames between the starts of training windows")
    seed: int = 0


class PredictorConfig(_Strict):
    kind: Literal["mask-predictor"] = "mask-predictor"
    name: str = "custom"
    input: PredictorInput = PredictorInput()
    history: int = Field(3, ge=2, description="K: observed frames (maps and the flows between them) per prediction")
    network: PredictorNetwork = PredictorNetwork()
    loss: PredictorLoss = PredictorLoss()
    train: PredictorTrain = PredictorTrain()

    @model_validator(mode="after")
    def _consistent(self) -> "PredictorConfig":
        factor = 2 ** self.network.n_downsampling
        if self.input.width % factor or self.input.height % factor:
            raise ValueError(f"input {self.input.width}x{self.input.height} must be divisible by {factor} "
                             f"(2**n_downsampling)")
        return self

    @property
    def window(self) -> int:
        """Frames per training sample: the history plus the frames rolled out."""
        return self.history + self.train.rollout

    @property
    def size(self) -> tuple[int, int]:
        return self.input.width, self.input.height

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def load_predictor_config(name_or_path: str | os.PathLike[str]) -> PredictorConfig:
    """A preset name (tiny, demo, street) or a YAML path."""
    return PredictorConfig.model_validate(read_preset(name_or_path, CONFIG_DIR, "predictor config"))
