"""Every flow's parameter model: the form the Prefect UI renders and the `vid2vid` CLI fills in.

They live apart from the flows so that the CLI can read their fields (an option's help and default come from
the field it fills, flows/cli/options.py) without importing Prefect: this module imports pydantic and the
small models it refers to, nothing that runs work. The flows import their models from here. (The ingest and
full-rebuild forms stay with their flows: they hold ``IngestConfig``, whose module decodes video.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from flows.params import FlowParams
from models.metrics.names import DEFAULT_METRICS, metric_names
from models.preprocess.registry import DEFAULT_BACKENDS, DEFAULT_STAGES, BackendSettings, Stage, check_backend
from models.training.job import TrainSettings
from models.vid2vid.config import load_model_config

#: what stands before the first synthesized frame (the choices of tasks/synthesize.py's ``first_frame``)
FirstFrameChoice = Literal["real", "zeros", "single"]


# --- the synthetic street (flows/ingest.py) ---------------------------------------------------------
class SynthSettings(FlowParams):
    """How the synthetic street is drawn (the full rebuild holds these as they are)."""

    clips: int = Field(default=4, ge=1, description="how many clips to draw")
    frames: int = Field(default=30, ge=2, description="frames per clip")
    size: tuple[int, int] = Field(default=(256, 128), description="(width, height) of the clips")
    seed: int = Field(default=0, description="clip k is drawn from seed*1000+k: the same seed, the same clips")
    val_fraction: float = Field(default=0.25, ge=0.0, le=1.0, description="share of clips held out for evaluation")

    @field_validator("size")
    @classmethod
    def _big_enough(cls, size: tuple[int, int]) -> tuple[int, int]:
        if size[0] < 32 or size[1] < 16:
            raise ValueError(f"synthetic clips are at least 32x16 (width x height), got {size[0]}x{size[1]}")
        from storage.video import size_problem  # the codec module (cv2, av): only when a form is checked

        problem = size_problem(*size, even=True)
        if problem:
            raise ValueError(f"synthetic clip size {problem}")
        return size


class SynthParams(SynthSettings):
    dataset: str = Field(default="street", description="the dataset to write the clips into")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")


# --- preprocessing (flows/preprocess.py) --------------------------------------------------------------
class PreprocessSettings(FlowParams):
    """How to preprocess (the full rebuild holds these as they are; its default stages follow the model)."""

    stages: list[Stage] | None = Field(None, description="default: semantic, instance, flow, sketch, pose (the "
                                                         "rebuild: the model's inputs + flow); also face15, "
                                                         "densepose, openpose")
    backends: dict[Stage, BackendSettings] = Field(
        default_factory=dict, description="per stage; stages not listed use their default backend")
    resolution: tuple[int, int] | None = Field(None, description="(width, height) the networks see; "
                                                                   "outputs keep the clip's size")
    device: str = Field("cpu", description="cpu, cuda, cuda:1 ...")
    dask_address: str | None = Field(None, description="an existing Dask scheduler; default: "
                                                       "$VID2VID_DASK_ADDRESS, else a local cluster")
    workers: int = Field(2, ge=1, description="local cluster worker processes")
    threads_per_worker: int = Field(1, ge=1, description="threads per local worker (and per network's torch)")
    batch_size: int = Field(4, ge=1, description="frames per network batch")
    force: bool = Field(False, description="rebuild even when the fingerprint is unchanged")

    @field_validator("backends")
    @classmethod
    def _known(cls, value: dict[str, BackendSettings]) -> dict[str, BackendSettings]:
        for stage, settings in value.items():
            check_backend(stage, settings.backend)
        return value


class PreprocessParams(PreprocessSettings):
    """The form the Prefect UI shows for a preprocessing run."""

    dataset: str = Field(description="the dataset's name under the data root")
    data_root: str | None = Field(None, description="default: $VID2VID_DATA_ROOT or ./data")
    weights_dir: str | None = Field(None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")
    clips: list[str] | None = Field(None, description="only these clips (default: every ok clip)")

    @property
    def stage_list(self) -> list[str]:
        return list(self.stages) if self.stages else list(DEFAULT_STAGES)

    def settings_for(self, stage: str) -> BackendSettings:
        return self.backends.get(stage) or BackendSettings(backend=DEFAULT_BACKENDS[stage])  # type: ignore[index]


# --- a model trained on a dataset (flows/train.py, flows/rebuild.py) ------------------------------------------
class ModelTarget(FlowParams):
    """What a training run and a full rebuild both name, declared once: the dataset, the model (a preset, with
    fields set on top) and the roots. ``TrainParams`` adds the training settings and mode, the rebuild's form
    (flows/rebuild.py) each step's settings."""

    dataset: str = Field(default="street", description="the dataset's name under the data root")
    config: str = Field(default="tiny", description="model preset (street, face, pose, tiny, tiny_face) or a YAML path")
    config_set: dict[str, Any] = Field(default_factory=dict, description="model config fields set on top of the "
                                       "preset, by dotted name (train.lr: 0.0001); the CLI's --set")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    runs_root: str | None = Field(default=None, description="default: $VID2VID_RUNS_ROOT or ./runs")
    weights_dir: str | None = Field(default=None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")

    @model_validator(mode="after")
    def _config_set_is_valid(self) -> "ModelTarget":
        if self.config_set:  # a wrong name or value is a wrong request, refused before anything runs
            load_model_config(self.config, self.config_set)
        return self


# --- training (flows/train.py) ------------------------------------------------------------------------
class TrainParams(ModelTarget, TrainSettings):
    """The form of a training run: its target and mode, plus the training settings handed on as they are."""

    run_name: str | None = Field(default=None, description="default: <dataset>-<config>-<time>-<random>")
    mode: Literal["train", "retrain", "rebuild"] = Field(
        default="train", description="retrain: fine-tune the champion of this dataset and config (a first model: "
                                     "from scratch) when the data or "
                                     "config changed, then promote it only if it passes the quality gate; rebuild: "
                                     "train afresh if the data, config or init_from changed; both do nothing otherwise")
    resume_from: str | None = Field(default=None, description="a checkpoint.pt / model.pt of an earlier run, continued")
    gate: str = Field(default="default", description="retrain: the quality gate (configs/gate/<name>.yaml or a path)")

    @model_validator(mode="after")
    def _one_start(self) -> "TrainParams":
        if self.resume_from and self.init_from:
            raise ValueError("resume_from continues an earlier run, init_from starts a new one from a model file's "
                             "weights: give one of them")
        if self.resume_from and self.mode == "retrain":
            raise ValueError("retrain starts from the champion of its config: resume_from is for mode train")
        return self


# --- evaluation (flows/evaluate.py) --------------------------------------------------------------------
class EvaluateSettings(FlowParams):
    """What to score (the full rebuild holds these as they are)."""

    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS),
                               description=f"any of {', '.join(DEFAULT_METRICS)}")
    split: str = Field(default="val", description="clips to evaluate; falls back to every clip when the split is empty")

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        metric_names(value)  # refused here, before any work
        return value


class EvaluateParams(EvaluateSettings):
    dataset: str = Field(description="the dataset's name under the data root")
    runs: list[str] = Field(description="run names under the runs root, run folders, model files or registry "
                                        "references (street/tiny@champion)")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    runs_root: str | None = Field(default=None, description="default: $VID2VID_RUNS_ROOT or ./runs")
    weights_dir: str | None = Field(default=None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")
    out_dir: str | None = Field(default=None, description="default: <runs_root>/evaluations/<dataset>")


# --- synthesis (flows/synthesize.py) -------------------------------------------------------------------
class SynthesizeParams(FlowParams):
    checkpoint: str = Field(description="model.pt or checkpoint.pt of a training run, or a registry reference such as "
                                        "street/demo_street@champion")
    dataset: str = Field(description="the dataset's name under the data root")
    clip: str = Field(description="the clip id whose source (labels, sketches, ...) drives the synthesis")
    out: str = Field(description="the mp4 to write")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    runs_root: str | None = Field(default=None, description="where references are looked up (default: "
                                                            "$VID2VID_RUNS_ROOT or ./runs)")
    remap: str | None = Field(default=None, description='semantic manipulation, e.g. "tree=building"')
    seed: int = Field(default=0, description="feature-vector sampling seed (multimodal models)")
    first_frame: FirstFrameChoice = Field(
        default="zeros", description="what the first frame(s) are: the real ones, generated from zero previous frames, "
                                     "or made by a frame-by-frame model; an official model takes L of them (NVIDIA's "
                                     "test.py --use_real_img / --no_first_img / --use_single_G)")
    single_checkpoint: str | None = Field(default=None, description="frame-by-frame model for --first-frame single "
                                                                       "(default: the one an imported model carries)")
    side_by_side: bool = Field(default=True, description="also write OUT.side_by_side.mp4 (source | synthesized | real)")
    frames_dir: str | None = Field(default=None, description="also write every frame as a lossless PNG "
                                   "(000000.png, ...) into this folder, placed as a whole when done")


# --- shipped reference models (flows/reference.py) -------------------------------------------------------
class ReferenceDataParams(FlowParams):
    name: str = Field(description="the recipe: configs/reference/<name>.yaml")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")


class ReferenceParams(ReferenceDataParams):
    steps: int | None = Field(default=None, ge=1, description="training steps (default: the recipe's budget)")
    workers: int | None = Field(default=None, ge=1, description="Ray Train workers (default: the recipe's)")
    resume_from: str | None = Field(default=None, description="a checkpoint of an earlier run of this model, or "
                                                              "'latest' (the newest run's newest checkpoint); the card "
                                                              "sums the time of every segment")
    data_only: bool = Field(default=False, description="build the recipe's dataset and stop")
    runs_root: str | None = Field(default=None, description="where its training runs go (default: <runs root>-reference, "
                                                            "e.g. ./runs-reference, apart from the demo's runs)")
    out_dir: str | None = Field(default=None, description="default: $VID2VID_REFERENCE_DIR or the repo's reference_models/")
    weights_dir: str | None = Field(default=None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), description="held-out metrics of the card")


# --- future video prediction (flows/predict.py) ------------------------------------------------------
class PredictParams(FlowParams):
    dataset: str = "street"
    data_root: str | None = None
    checkpoint: str = Field(description="the vid2vid model.pt that turns predicted maps into frames, or a registry "
                                        "reference such as street/demo_street@champion")
    runs_root: str | None = Field(default=None, description="where references are looked up (default: "
                                                            "$VID2VID_RUNS_ROOT or ./runs)")
    predictor: str = Field(description="the mask predictor's model.pt (vid2vid train-predictor)")
    clip: str
    observed: int = Field(default=4, ge=1, description="observed frames (K)")
    future: int = Field(default=8, ge=1, description="frames to predict (N)")
    out: str = Field(description="the side-by-side mp4 to write (observed | predicted | real), "
                                  "and OUT.masks.mp4 (predicted | real maps)")
    evaluate: bool = Field(default=True, description="also score the horizon table over the split's clips")
    split: str = Field(default="val", description="clips scored in the horizon table")
    fid: bool = Field(default=True, description="frame FID per step (needs the Inception weights)")
    weights_dir: str | None = None


class TrainPredictorParams(TrainSettings, FlowParams):
    """The form of a predictor training run: its target, plus the Ray Train settings vid2vid training uses."""

    dataset: str = "street"
    data_root: str | None = None
    config: str = Field(default="tiny", description="predictor preset (tiny, demo, street) or a YAML path")
    runs_root: str | None = Field(default=None, description="default: $VID2VID_RUNS_ROOT or ./runs")
    run_name: str | None = Field(default=None, description="default: <dataset>-predictor-<config>-<time>-<random>")
    resume_from: str | None = Field(default=None, description="a predictor model.pt / checkpoint.pt to continue")

    @model_validator(mode="after")
    def _no_init_from(self) -> "TrainPredictorParams":
        if self.init_from:  # a TrainSettings knob for vid2vid; never silently ignored here
            raise ValueError("init_from starts vid2vid training from a model file; the mask predictor has no such "
                             "start (continue one of its runs with resume_from)")
        return self
