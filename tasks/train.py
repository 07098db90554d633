"""Prefect tasks of the training stage: the Ray Train run, and the artifacts a user reviews afterwards."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from tasks import progress
from tasks.artifacts import artifact_key, data_uri, publish_markdown
from models.training import TrainJob, TrainOutcome, input_stages, run_training
from models.training.launch import SUMMARY_FILE, read_metrics
from models.training.review import active_losses, loss_curve_png, png_bytes, review_clip, sample_grid
from models.vid2vid.config import ModelConfig
from storage.layout import DatasetLayout

# Worker failures are retried inside Ray Train (FailureConfig, from the last checkpoint); a Prefect retry
# would start the run over, so none here.


HEADLINE_LOSSES = ("G_total", "D_total", "L1", "G_flow_warp")
PREDICTOR_HEADLINE_LOSSES = ("P_total", "P_ce", "P_warp", "P_epe")


def headline_losses(job: TrainJob) -> list[str]:
    """The few loss terms a progress line shows, of those the run optimises."""
    if job.model_kind == "mask-predictor":
        return list(PREDICTOR_HEADLINE_LOSSES)
    return [k for k in HEADLINE_LOSSES if k in active_losses(job.model, [])]


def diagnostics_line(row: dict) -> str:
    """The held-out diagnostics of a metrics row (models/vid2vid/diagnostics.py), in words."""
    parts = [f"held-out L1 free-running {row['diag_l1_free_mean']:.3f} vs teacher-forced "
             f"{row.get('diag_l1_teacher_mean', float('nan')):.3f}"]
    if "diag_l1_hallucinated_mean" in row:
        parts.append(f"hallucinated alone {row['diag_l1_hallucinated_mean']:.3f}")
    if "diag_flow_epe" in row:
        parts.append(f"flow EPE {row['diag_flow_epe']:.2f} px")
    if "diag_mask_mean" in row:
        parts.append(f"mean mask {row['diag_mask_mean']:.2f}")
    return f"step {row['step']:.0f} " + ", ".join(parts)


class TrainingProgress:
    """Where a run is, read from its metrics.jsonl while Ray trains it, told three ways: the run's progress
    artifact, a log line every tenth of the run (losses, samples/s, ETA), and the CLI's progress bar.
    Both ways of training (in process, a Ray Job) poll this; metrics.jsonl is written by worker 0. Until the
    first step it says where the start-up is, every ``WAIT_LOG_EVERY`` seconds: a run is never silent."""

    WAIT_LOG_EVERY = 10.0

    def __init__(self, job: TrainJob, description: str) -> None:
        self.job, self.logger, self.started = job, get_run_logger(), time.monotonic()
        self.total = float(job.max_steps) if job.max_steps else float(job.epochs or job.model.train.epochs)
        self.unit = "steps" if job.max_steps else "epochs"
        self.active = headline_losses(job)  # a line stays readable
        self.artifact = create_progress_artifact(progress=0.0, key=artifact_key("train-progress", job.dataset),
                                                 description=description)
        self.tracker = progress.track(f"train {job.dataset} {job.run_path.name}", self.total, self.unit)
        self.shown, self.logged = -1.0, 0.0
        self.waiting_logged = 0.0  # seconds into the start-up (Ray cluster, workers, data) last logged
        self.completed = False  # set by the caller when the run ended well: the artifact then reads 100 %

    def starting(self) -> None:
        """The first line, before Ray is asked for anything: what starts, and on what."""
        job = self.job
        where = job.ray_address or "a local Ray cluster (started now)"
        self.logger.info("starting %d Ray Train worker(s) (%s) on %s; data: %s under %s (stages %s); %s %s",
                         job.workers, f"{job.gpus_per_worker:g} GPU each" if job.gpus_per_worker else "CPU", where,
                         job.dataset, job.data_root, ", ".join(job.stages) or "rgb",
                         f"{self.total:.0f}", self.unit)

    def poll(self) -> None:
        metrics = read_metrics(self.job.run_path)
        if not metrics:
            elapsed = time.monotonic() - self.started
            if elapsed - self.waiting_logged >= self.WAIT_LOG_EVERY:  # start-up is not silence: say where it is
                self.waiting_logged = elapsed
                self.logger.info("%.0f s: no training step yet (Ray cluster and workers starting, data loading, "
                                 "first step)", elapsed)
            return
        last = metrics[-1]
        done = last.get("step", 0.0) if self.job.max_steps else last.get("epoch", 0.0) + 1
        fraction = min(1.0, done / self.total)
        if fraction == self.shown:
            return
        self.shown = fraction
        elapsed = time.monotonic() - self.started
        losses = ", ".join(f"{k} {last[k]:.3g}" for k in self.active if k in last)
        eta = f", ETA {elapsed * (1 - fraction) / fraction:.0f} s" if 0 < fraction < 1 else ""
        line = (f"step {last.get('step', 0):.0f}" + (f"/{self.total:.0f}" if self.job.max_steps else "")
                + f" ({100 * fraction:.0f}%): {losses}; {last.get('samples_per_s', 0):.2f} samples/s{eta}")
        diagnosed = next((m for m in reversed(metrics) if "diag_l1_free_mean" in m), None)
        if diagnosed is not None:
            line += "; " + diagnostics_line(diagnosed)
        update_progress_artifact(self.artifact, progress=100.0 * fraction, description=line)
        self.tracker.update(min(done, self.total), losses)
        if fraction - self.logged >= 0.1 or fraction == 1.0:
            self.logged = fraction
            self.logger.info("%s", line)

    def close(self) -> None:
        self.poll()
        if self.completed:  # no run leaves a progress artifact short of 100 % after it succeeded
            update_progress_artifact(self.artifact, progress=100.0)
        self.tracker.close()


@contextmanager
def following(job: TrainJob, description: str, every: float = 2.0) -> Iterator[TrainingProgress]:
    """Poll ``TrainingProgress`` on a thread while the block trains (the in-process path blocks in fit())."""
    follower = TrainingProgress(job, description)
    follower.starting()
    stop = threading.Event()
    context = contextvars.copy_context()  # the thread reports to the same Prefect run and server

    def loop() -> None:
        while not stop.wait(every):
            try:
                follower.poll()
            except Exception as exc:  # noqa: BLE001 - progress is a courtesy; training goes on
                follower.logger.debug("progress poll failed: %s", exc)

    thread = threading.Thread(target=context.run, args=(loop,), daemon=True, name="train-progress")
    thread.start()
    try:
        yield follower
    finally:
        stop.set()
        thread.join()
        follower.close()


@task(name="ray-train", task_run_name="train {job.dataset} -> {job.run_dir}", cache_policy=NO_CACHE)
def train_task(job: TrainJob, layout: DatasetLayout | None = None) -> TrainOutcome:
    """``layout``: the job's dataset, resolved by the flow (``run_training`` builds it from the job otherwise)."""
    with following(job, f"training run {job.run_path.name}") as follower:
        outcome = run_training(job, layout)
        follower.completed = outcome.status == "completed"
    return outcome


def _image_markdown(title: str, png: bytes, caption: str) -> str:
    # the picture travels with the artifact instead of needing a file server
    return f"### {title}\n\n![{title}]({data_uri(png)})\n\n{caption}\n"


def _table(header: tuple[str, str], rows: list[tuple[str, object]]) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]


def _start(job: dict) -> str:
    """Where the run's weights came from (the restore order of models/training/loop.py)."""
    if job.get("resume_from"):
        return f"resumed {job['resume_from']}"
    return f"weights of {job['init_from']}" if job.get("init_from") else "fresh"


def training_summary(outcome: TrainOutcome, dataset: str, metrics: list[dict],
                     config: ModelConfig | None = None) -> str:
    """What a reviewer needs of a run: what was trained how, on which data, what it reached, where it is.
    Final losses are the active terms only, averaged over the last tenth of the logged steps. ``config``: the
    run's validated model config, when the caller has it (else the one in the run's job.json is read)."""
    summary_file = Path(outcome.run_dir) / SUMMARY_FILE
    job = json.loads(summary_file.read_text()).get("job", {}) if summary_file.is_file() else {}
    model = config.to_dict() if config is not None else job.get("model") or {}
    rules = config if config is not None else model  # the object, not its data validated again
    train = model.get("train", {})
    generator = model.get("generator", {})
    tail = metrics[-max(1, len(metrics) // 10):]
    losses = [(k, f"{sum(m[k] for m in tail) / len(tail):.4g}") for k in active_losses(rules, metrics)
              if model and all(k in m for m in tail)] if model else []
    rate = f"{outcome.samples_per_second:.2f}" if outcome.samples_per_second else "n/a"
    lines = [f"## Training run `{Path(outcome.run_dir).name}` on `{dataset}`: {outcome.status}", "", outcome.message, ""]
    lines += ["### Hyper-parameters", ""] + _table(("setting", "value"), [
        ("config", model.get("name", "n/a")), ("steps trained", outcome.steps),
        ("max steps", job.get("max_steps") or "n/a"), ("epochs", job.get("epochs") or train.get("epochs", "n/a")),
        ("batch size", train.get("batch_size", "n/a")), ("learning rate", train.get("lr", "n/a")),
        ("window frames", job.get("window_frames") or train.get("max_seq_len", "n/a")),
        ("sequence length", f"{train.get('initial_seq_len', 'n/a')} → {train.get('max_seq_len', 'n/a')}"),
        ("generator scales", generator.get("n_scales", "n/a")), ("Ray workers", job.get("workers", "n/a")),
        ("GPUs per worker", job.get("gpus_per_worker", 0)), ("started from", _start(job))])
    lines += ["### Data", ""] + _table(("", ""), [
        ("dataset", f"`{dataset}` under `{job.get('data_root', 'n/a')}`"),
        ("stages", ", ".join(("rgb", *input_stages(rules))) if model else "n/a"),
        ("fingerprint", f"`{outcome.dataset_fingerprint}`")])
    lines += [f"### Final losses (mean of the last {len(tail)} logged step(s); active terms only)", ""]
    lines += _table(("loss", "value"), losses) if losses else ["no step was logged", ""]
    lines += [f"Throughput: {rate} samples/s over {outcome.seconds:.0f} s.", ""]
    lines += ["### Files", ""] + _table(("", "where"), [
        ("run folder", f"`{outcome.run_dir}`"), ("model", f"`{outcome.model_path}`" if outcome.model_path else "none"),
        ("checkpoint", f"`{outcome.checkpoint_path}`" if outcome.checkpoint_path else "none"),
        ("metrics", f"`{outcome.metrics_path}`"), ("TensorBoard", f"`tensorboard --logdir {outcome.tensorboard_dir}`")])
    return "\n".join(lines)


@task(name="publish-training-artifacts", cache_policy=NO_CACHE)
def publish_training_task(outcome: TrainOutcome, layout: DatasetLayout,
                          config: ModelConfig | None = None) -> dict[str, str]:
    """A table of final metrics and checkpoints, a loss-curve plot and a sample grid, all keyed by dataset.
    ``config``: the run's validated model config, as the flow resolved it (else read from the run's job.json)."""
    run, dataset = Path(outcome.run_dir), layout.dataset
    keys: dict[str, str] = {}
    metrics = read_metrics(run)
    keys["table"] = publish_markdown(artifact_key("train", dataset),
                                     training_summary(outcome, dataset, metrics, config),
                                     f"training run {run.name} on {dataset}: {outcome.status}")
    if metrics:
        model = config if config is not None else json.loads((run / SUMMARY_FILE).read_text())["job"]["model"]
        active = active_losses(model, metrics)
        curve = loss_curve_png(metrics, [k for k in HEADLINE_LOSSES if k in active])
        (run / "loss_curve.png").write_bytes(curve)
        keys["loss_curve"] = publish_markdown(artifact_key("train", dataset, "loss-curve"), _image_markdown(
            "Loss curves", curve, f"run `{run.name}`, {len(metrics)} steps (log scale); faint: each step, bold: "
            "smoothed; dashed: the progressive schedule changed (longer sequences or a finer scale), where a "
            "jump is expected"), "training loss curves")
    if outcome.model_path:
        clip = review_clip(layout)
        grid = png_bytes(sample_grid(outcome.model_path, layout, clip))
        (run / "samples.png").write_bytes(grid)
        keys["samples"] = publish_markdown(artifact_key("train", dataset, "samples"), _image_markdown(
            "Samples: source | synthesized | real", grid, f"clip `{clip}`, first frames, model `{outcome.model_path}`"),
            "sample frames of the trained model")
    (run / "artifacts.json").write_text(json.dumps(keys, indent=2))
    return keys
