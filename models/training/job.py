"""What one training run is: validated data handed from the driver to every Ray worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from models.prediction.config import PredictorConfig
from models.vid2vid.config import ModelConfig


def input_stages(model: ModelConfig | dict) -> tuple[str, ...]:
    """The stage shards a model config trains on: the stages its declared inputs name (and a multimodal
    model's instance stage), then the reference flow. Read from the config; nothing is guessed."""
    return (*ModelConfig.model_validate(model).data_stages, "flow")


def _kind(model: Any) -> str:
    """Which config a job's model is: the ``kind`` it names (the mask predictor's), else vid2vid's (none)."""
    kind = model.get("kind") if isinstance(model, dict) else getattr(model, "kind", None)
    return kind or "vid2vid"


#: the validated config of the model a job trains: vid2vid's, or another kind's (``models/training/recipes.py``)
JobModel = Annotated[Union[Annotated[ModelConfig, Tag("vid2vid")], Annotated[PredictorConfig, Tag("mask-predictor")]],
                     Discriminator(_kind)]


class TrainSettings(BaseModel):
    """The knobs of a training run a user chooses; the train flow's parameters and the rebuild's hold them."""

    model_config = ConfigDict(extra="forbid")

    window_frames: int | None = Field(default=None, ge=2, description="frames per training window; default: max_seq_len")
    epochs: int | None = Field(default=None, ge=1, description="default: the model config's train.epochs")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps; default: train every epoch")
    workers: int = Field(default=2, ge=1, description="Ray Train workers")
    gpus_per_worker: float = Field(default=0.0, ge=0.0, description="0: CPU workers")
    bf16: bool = Field(default=True, description="bf16 autocast (float32 weights and losses) on GPU "
                      "workers and on CPUs with native bf16 (AVX512-BF16/AMX; others stay float32); False: exact float32")
    report_every: int = Field(default=1, ge=1, description="steps between reports to Ray Train")
    checkpoint_every: int = Field(default=10, ge=1, description="steps between checkpoints (and at the end)")
    diagnose_every: int = Field(default=8, ge=0, description="steps between held-out diagnostics (flow EPE against "
                                "the reference flow, mean occlusion mask, free-running vs teacher-forced L1 per "
                                "frame) on the first validation clip; 0: off")
    keep_checkpoints: int = Field(default=2, ge=1, description="newest checkpoints kept on disk")
    max_failures: int = Field(default=2, ge=0, description="worker-group restarts from the last checkpoint")
    ray_address: str | None = Field(default=None, description="default: $VID2VID_RAY_ADDRESS, else a local Ray")
    init_from: str | None = Field(default=None, description="a model file (a run's model.pt, or one written by "
                                  "`vid2vid import-official`) whose generator (and discriminators, when it has them) "
                                  "start this run: new optimizers, step 0; its architecture must match the config")


class FaultInjection(BaseModel):
    """Test-only faults, never in a user-facing form: set by tests, or by ``$VID2VID_FAULT_INJECTION`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    failure_at_step: int | None = Field(default=None, description="the last worker dies once at this step")
    nan_at_step: int | None = Field(default=None, description="a NaN loss appears at this step")


class TrainJob(TrainSettings):
    """One run as the driver hands it to every Ray worker: the settings plus what the flow resolved."""

    dataset: str
    data_root: str
    model: JobModel = Field(description="the validated model config (plain data in job.json and to Ray workers)")
    run_dir: str = Field(description="<runs_root>/<run_name>: checkpoints, TensorBoard events, exported model")
    resume_from: str | None = Field(default=None, description="a checkpoint.pt / model.pt of an earlier run; "
                                    "continues it (and wins over init_from, as a Ray restart's checkpoint wins over both)")
    weights_dir: str | None = None
    faults: FaultInjection = Field(default_factory=FaultInjection)
    stages: tuple[str, ...] = Field(default=(), description="stage shards read besides rgb; default: the vid2vid "
                                                            "model config's declared inputs, then flow")

    @model_validator(mode="after")
    def _stages_from_config(self) -> "TrainJob":
        if not self.stages:  # vid2vid: read from the config, never guessed; other models name theirs
            self.stages = input_stages(self.model)
        return self

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)

    @property
    def model_kind(self) -> str:
        """Which model the job trains (``models/training/recipes.py``): the config's ``kind``; vid2vid's has none."""
        return _kind(self.model)


class TrainOutcome(BaseModel):
    run_dir: str
    status: str  # completed | stopped_nan
    message: str
    steps: int
    epochs: int
    final_metrics: dict[str, float]
    model_path: str | None
    checkpoint_path: str | None
    tensorboard_dir: str
    metrics_path: str
    seconds: float
    samples_per_second: float | None
    dataset_fingerprint: str
