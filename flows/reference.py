"""`vid2vid reference-model --name N`: one shipped reference model from nothing, as its recipe says
(configs/reference/N.yaml) — the data, the training (resumable with --resume-from; the card sums every
segment's time), the fp16 pack, the held-out evaluation of the packed file, and the model card — placed
under reference_models/N/. `make reference-models` runs it for every recipe, niced.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import time
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.evaluate import EvaluateParams, evaluate_step, evaluation_data_fingerprint
from flows.forms import ReferenceDataParams, ReferenceParams
from flows.ingest import IngestParams, SynthParams, ingest_step, synth_step
from flows.naming import run_name
from flows.preprocess import PreprocessParams, preprocess_step
from storage.sample_videos import carphone_path
from flows.train import TrainParams, train_step
from models.metrics.names import metric_names
from models.preprocess.registry import BackendSettings
from models.reference.card import (CARD_FILE, CARD_MARKDOWN, DataRecord, HeldOut, ModelCard, Segment, WallTime,
                                   reference_dir, write_card)
from models.reference.provenance import LEDGER, code_commit, machine, render_markdown, segments_until
from models.reference.recipe import CarphoneData, ReferenceRecipe, load_recipe
from models.training import input_stages
from models.training.launch import dataset_fingerprint
from models.vid2vid.config import ModelConfig, load_model_config
from storage import locations
from storage.atomic import atomic_write_bytes
from storage.fingerprint import sha256_file
from storage.ingest import IngestConfig
from storage.layout import DatasetLayout
from storage.manifest import merge_records, read_manifest
from storage.target import Target, resolve_target
from storage.video import FramePolicy, VideoSource, decode, probe
from tasks.artifacts import artifact_key, publish_markdown

PROTOCOL = ("the evaluate flow's (README, 'Evaluation protocol'): every held-out clip synthesized at full length "
            "from its real frame 0, frames 1..T-1 scored against the real frames (synthesized ones from a lossless "
            "copy); PSNR/SSIM averaged per clip, then over clips; warp error under the clips' own flows; each FID "
            "needs its weights file (else 'not computed')")
HELDOUT_CLIP, TRAIN_CLIP = "carphone_heldout", "carphone_train"


class ReferenceData(BaseModel):
    dataset: str
    data_root: str
    heldout_clips: list[str]
    source_sha256: str | None
    regenerate: str


class ReferenceResult(BaseModel):
    name: str
    data: ReferenceData
    model_path: str | None = None
    card_path: str | None = None
    steps: int = 0
    heldout: dict[str, float | str] = {}
    seconds: float = 0.0


def _carphone_frames(size: tuple[int, int], train_fraction: float) -> tuple[Path, str, float]:
    """The carphone clip cut in time into two frame folders (train | held out) under a folder named by the clip's
    sha256, so a rerun ingests the same sources; returns (folder, sha256, fps)."""
    source = carphone_path()
    sha = sha256_file(source)
    video = VideoSource("carphone", source)
    fps = probe(video).fps
    folder = Path(tempfile.gettempdir()) / f"vid2vid-carphone-{sha[:12]}-{train_fraction:.2f}"
    if not (folder / ".complete").is_file():
        from PIL import Image

        frames = list(decode(video))
        cut = round(len(frames) * train_fraction)
        staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        for clip, part in ((TRAIN_CLIP, frames[:cut]), (HELDOUT_CLIP, frames[cut:])):
            (staging / clip).mkdir()
            for index, frame in enumerate(part):
                Image.fromarray(frame).save(staging / clip / f"{index:06d}.png")
        (staging / ".complete").write_text(f"{len(frames)} frames, cut at {cut}\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return folder, sha, fps


@flow(name="reference-data", log_prints=True,
      flow_run_name=run_name("reference-data", ReferenceDataParams, lambda p: p.name))
def reference_data_flow(params: ReferenceDataParams) -> ReferenceData:
    """The recipe's dataset, built (or found unchanged) by the pipeline's own flows."""
    recipe = load_recipe(params.name)
    data = recipe.data
    resolved = resolve_target(data.dataset, params.data_root)
    root = resolved.root
    model = load_model_config(recipe.preset)
    stages = list(input_stages(model))
    target = {"dataset": data.dataset, "data_root": str(root)}
    source_sha = None
    if isinstance(data, CarphoneData):
        folder, source_sha, fps = _carphone_frames(data.size, data.train_fraction)
        policy = FramePolicy(size=data.size, mode="crop", frame_fps=fps)
        ingested = ingest_step(IngestParams(src=str(folder), config=IngestConfig(policy=policy, val_fraction=0.0),
                                            **target), resolved)
        split = {TRAIN_CLIP: "train", HELDOUT_CLIP: "val"}  # cut in time, not by the ingest's hash of the clip id
        merge_records(resolved.layout,
                      [r.model_copy(update={"split": split.get(r.clip_id, r.split)}) for r in ingested.records])
        preprocess_step(PreprocessParams(stages=stages, **target), resolved)
    else:  # the demo's synthetic street: exact labels and flow, validated, never re-estimated
        synth_step(SynthParams(clips=data.clips, frames=data.frames, size=data.size, seed=data.seed,
                               val_fraction=data.val_fraction, **target), resolved)
        backends = {stage: BackendSettings(backend="dataset") for stage in ("semantic", "instance", "flow")}
        preprocess_step(PreprocessParams(stages=stages, backends=backends, **target), resolved)
    layout = resolved.layout
    heldout = [r.clip_id for r in read_manifest(layout) if r.status == "ok" and r.split == "val"]
    return ReferenceData(dataset=data.dataset, data_root=str(root), heldout_clips=heldout, source_sha256=source_sha,
                         regenerate=f"vid2vid --data-root DATA reference-model --name {recipe.name} --data-only")


def latest_checkpoint(runs: Path, name: str) -> Path:
    """The newest checkpoint of the newest run of reference model ``name``: its model.pt when it finished, else
    its newest Ray checkpoint (a killed run)."""
    folders = sorted(runs.glob(f"reference-{name}-*"))
    for folder in reversed(folders):
        candidates = [folder / "model.pt"] if (folder / "model.pt").is_file() else sorted(
            (folder / "ray").rglob("checkpoint.pt"), key=lambda p: p.stat().st_mtime)
        if candidates:
            return candidates[-1]
    raise FileNotFoundError(f"--resume-from latest: no run of reference model {name!r} with a checkpoint under {runs} "
                            f"(looked for reference-{name}-*/model.pt and its ray/**/checkpoint.pt)")


def _budget_note(recipe: ReferenceRecipe, steps: int) -> str:
    if steps >= recipe.budget.steps:
        return (f"The recipe's budget (configs/reference/{recipe.name}.yaml: {recipe.budget.steps} steps, sized to "
                f"<= {recipe.budget.hours_on_2_cpu_cores} h on 2 CPU cores).")
    return (f"A SHORT SMOKE BUDGET: {steps} of the recipe's {recipe.budget.steps} steps, so the files, card, loading "
            f"and fine-tuning can be checked; it is not what the recipe reaches. `make reference-models` trains the "
            f"budget.")


def _install(staged: Path, target: Path) -> None:
    """Put the staged folder at ``target`` as a whole (an earlier model there is replaced only at the end)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
    incoming.chmod(0o755)  # a folder of the repository, not a private temp folder
    for item in staged.iterdir():
        shutil.copy2(item, incoming / item.name)
        (incoming / item.name).chmod(0o644)
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    incoming.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@flow(name="reference-model", log_prints=True,
      flow_run_name=run_name("reference-model", ReferenceParams, lambda p: f"{p.name} {p.steps or 'budget'} steps"))
def reference_model_flow(params: ReferenceParams) -> ReferenceResult:
    """Train the recipe's model (resumable), pack it, score it on its held-out clips, card it, install it."""
    started = time.perf_counter()
    recipe = load_recipe(params.name)
    metric_names(params.metrics)  # a misspelt metric is refused now, not after hours of training
    steps = params.steps or recipe.budget.steps
    runs = locations.reference_runs_root(params.runs_root).resolve()
    resume, start_step = _resume_point(params.resume_from, runs, recipe.name, steps)  # before any work
    data = reference_data_flow(ReferenceDataParams(name=params.name, data_root=params.data_root))
    if params.data_only:
        return ReferenceResult(name=recipe.name, data=data, seconds=time.perf_counter() - started)
    # the reference runs root, kept apart from the rebuild's (storage.locations.reference_runs_root)
    target = Target(layout=DatasetLayout(Path(data.data_root), data.dataset), runs=runs,
                    weights_dir=params.weights_dir, ray_address=locations.ray_address())
    model = load_model_config(recipe.preset)
    trained, segments = _train(params, recipe, target, model, steps, resume, start_step)
    staged, parts = _pack(recipe, Path(trained.run_dir or ""), trained.model_path or "")
    evaluation = evaluate_step(EvaluateParams(  # its own named evaluation: the dataset's latest one stays as it is
        dataset=data.dataset, runs=[str(staged / "model.pt")], metrics=params.metrics, data_root=data.data_root,
        runs_root=str(runs), weights_dir=params.weights_dir,
        out_dir=str(runs / "evaluations" / data.dataset / f"reference-{recipe.name}")), target)
    card = _card(recipe, data, target, model, staged, parts, (steps, trained.steps), segments,
                 evaluation.evaluations[0], started)
    write_card(staged, card, render_markdown(card))
    installed = reference_dir(params.out_dir) / recipe.name
    _install(staged, installed)
    publish_markdown(artifact_key("reference", recipe.name), (installed / CARD_MARKDOWN).read_text(),
                     f"reference model {recipe.name}: its card")
    return ReferenceResult(name=recipe.name, data=data, model_path=str(installed / "model.pt"),
                           card_path=str(installed / CARD_FILE), steps=trained.steps, heldout=card.heldout.metrics,
                           seconds=time.perf_counter() - started)


def _resume_point(resume_from: str | None, runs: Path, name: str, steps: int) -> tuple[Path | None, int]:
    """The checkpoint to resume from (``latest``: the recipe's newest) and its step; a wrong request is refused
    here, before any work."""
    from models.vid2vid.checkpoint import load_checkpoint

    if not resume_from:
        return None, 0
    resume = latest_checkpoint(runs, name) if resume_from == "latest" else Path(resume_from)
    if not resume.is_file():
        raise FileNotFoundError(f"--resume-from {resume}: no such checkpoint")
    start_step = int(load_checkpoint(resume).get("step", 0))
    if start_step >= steps:
        raise ValueError(f"--resume-from {resume} is at step {start_step} already: give --steps above it "
                         f"(the total to reach, now {steps})")
    return resume, start_step


def _train(params: ReferenceParams, recipe: ReferenceRecipe, target: Target, model: ModelConfig, steps: int,
           resume: Path | None, start_step: int):  # noqa: ANN202 - (TrainFlowResult, list[Segment])
    """The training segment of this command, and the ledger of every segment so far (the card's wall time)."""
    before = []
    if resume is not None:
        before = segments_until(resume, start_step)
        get_run_logger().info("resuming %s from %s (step %d; %d earlier segment(s))", recipe.name, resume, start_step,
                              len(before))
    layout = target.layout
    trained = train_step(TrainParams(
        dataset=layout.dataset, config=recipe.preset, data_root=str(layout.root), runs_root=str(target.runs),
        run_name=f"reference-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}", max_steps=steps,
        workers=params.workers or recipe.budget.workers, checkpoint_every=recipe.budget.checkpoint_every,
        resume_from=str(resume) if resume else None, weights_dir=params.weights_dir), target, model)
    run = Path(trained.run_dir or "")
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    segments = [*before, Segment(run_dir=str(run), start_step=start_step, end_step=trained.steps,
                                 seconds=round(float(summary.get("seconds", 0.0)), 1),
                                 resumed_from=str(resume) if resume else None)]
    atomic_write_bytes(run / LEDGER, json.dumps({"name": recipe.name, "segments": [s.model_dump() for s in segments]},
                                                indent=2).encode())
    return trained, segments


def _pack(recipe: ReferenceRecipe, run: Path, model_path: str) -> tuple[Path, list[str]]:
    """The shipped file (fp16) staged in the run; the evaluation names the run after this folder."""
    from models.reference.pack import pack_model

    staged = run / "reference" / recipe.name
    staged.mkdir(parents=True, exist_ok=True)
    return staged, pack_model(model_path, staged / "model.pt")


def _card(recipe: ReferenceRecipe, data: ReferenceData, target: Target, model: ModelConfig, staged: Path,
          parts: list[str], steps: tuple[int, int], segments: list[Segment], scored,  # noqa: ANN001 - an evaluation
          started: float) -> ModelCard:
    """The model card: command, config, steps (asked, trained), wall time, machine, data fingerprints, commit,
    held-out metrics."""
    from models.vid2vid.checkpoint import load_checkpoint

    asked, trained_steps = steps
    config = load_checkpoint(staged / "model.pt")["config"]
    clips = [c.clip_id for c in scored.clips]
    commit, dirty = code_commit()
    return ModelCard(
        name=recipe.name, preset=recipe.preset, method=scored.variant, twin=recipe.twin,
        sha256=sha256_file(staged / "model.pt"), size_bytes=(staged / "model.pt").stat().st_size, parts=parts,
        command=f"nice -n 19 .venv/bin/vid2vid reference-model --name {recipe.name} --steps {asked}",
        config=config, steps=trained_steps, budget_steps=recipe.budget.steps,
        budget_note=_budget_note(recipe, trained_steps),
        wall_time=WallTime(training_seconds=round(sum(s.seconds for s in segments), 1), segments=segments,
                           last_command_seconds=round(time.perf_counter() - started, 1)),
        machine=machine(),
        data=DataRecord(kind=recipe.data.kind, dataset=data.dataset, recipe=recipe.data.model_dump(mode="json"),
                        train_fingerprint=dataset_fingerprint(target.layout, input_stages(model)),
                        heldout_fingerprint=evaluation_data_fingerprint(target.layout, clips), heldout_clips=clips,
                        source_sha256=data.source_sha256, regenerate=data.regenerate),
        code_commit=commit, code_dirty=dirty,
        heldout=HeldOut(metrics=scored.values, references=scored.references, protocol=PROTOCOL, clips=len(clips),
                        frames_scored=int(scored.details.get("psnr", {}).get("n_frames", 0))),
        trained_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
