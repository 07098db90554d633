"""Commands that use models: synthesize, evaluate, predict, and the end-to-end rebuild and demo."""

from __future__ import annotations

import argparse
import sys

from flows.cli.console import print_table
from flows.cli.options import (CONFIG_SET, DASK_ADDRESS, DASK_WORKERS, LOOKUP_RUNS_ROOT, METRICS, RAY_ADDRESS,
                               RUNS_ROOT, WEIGHTS_DIR, backend_args, config_set, field_option, form, given, take)
from flows.forms import EvaluateParams, PredictParams, PreprocessSettings, SynthesizeParams
from models.training.job import TrainSettings


def _model_file(text: str, runs_root: str | None) -> str:
    """A model file from a path or a registry reference (DATASET/CONFIG@champion), resolved once, here."""
    from storage.locations import runs_root as resolve_runs_root
    from storage.registry import is_reference, resolve_model_path

    if not is_reference(text):
        return text
    path = resolve_model_path(text, resolve_runs_root(runs_root))
    print(f"{text} -> {path}")
    return path


# --- synthesize / evaluate ------------------------------------------------------------------------------------
def cmd_synthesize(args: argparse.Namespace) -> int:
    from storage.outputs import check_synthesis_outputs

    # a managed file as an output ends here, before torch is imported or a flow run starts
    check_synthesis_outputs(args.out, args.frames_dir, True, args.data_root, [args.checkpoint, args.single_checkpoint])
    from flows.synthesize import synthesize_flow

    params = form(args, SynthesizeParams, checkpoint=_model_file(args.checkpoint, args.runs_root))
    result = synthesize_flow(params)
    print(f"wrote {result.frames} frames to {result.video} ({result.frames_per_second:.1f} frames/s)")
    if result.side_by_side:
        print(f"side by side (source | synthesized | real): {result.side_by_side}")
    if result.frames_dir:
        print(f"lossless PNG frames: {result.frames_dir}")
    if result.seed_frames:
        print(f"frames 0..{result.seed_frames - 1} are the given first frames (--first-frame {params.first_frame})")
    return 0


def add_synthesize(sub: argparse._SubParsersAction) -> None:
    synthesize = sub.add_parser("synthesize", help="a clip through a trained model into an mp4 of any length")
    field_option(synthesize, SynthesizeParams, "checkpoint")
    take(synthesize, LOOKUP_RUNS_ROOT)
    for name in ("dataset", "clip", "out", "remap", "seed", "first_frame", "single_checkpoint",
                 "frames_dir"):
        field_option(synthesize, SynthesizeParams, name)
    synthesize.set_defaults(func=cmd_synthesize)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate import evaluate_flow

    result = evaluate_flow(form(args, EvaluateParams))
    print_table(f"evaluation of {args.dataset}", result.table)
    print("\n".join(result.notes))
    print(f"videos and comparison.json in {result.out_dir}")
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="synthesize held-out clips of trained runs and score them")
    field_option(evaluate, EvaluateParams, "dataset")
    field_option(evaluate, EvaluateParams, "runs")
    take(evaluate, METRICS, RUNS_ROOT, WEIGHTS_DIR)
    field_option(evaluate, EvaluateParams, "split")
    evaluate.set_defaults(func=cmd_evaluate)


# --- future video prediction (the paper's Section 4) ----------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> int:
    from storage.outputs import check_output

    out = check_output(args.out, "--out", data_root=args.data_root, inputs=[args.checkpoint, args.predictor])
    check_output(out.with_name(out.stem + ".masks.mp4"), "--out's masks file", data_root=args.data_root,
                 inputs=[args.checkpoint, args.predictor])
    from flows.predict import predict_flow
    from models.prediction.pipeline import validate_request
    from storage.errors import StorageError
    from storage.layout import DatasetLayout

    values = given(args, PredictParams, checkpoint=_model_file(args.checkpoint, args.runs_root),
                   evaluate=not args.no_evaluate, fid=not args.no_fid)
    request = PredictParams.model_construct(**values)  # the form's defaults in, unchecked: the request's own words
    validate_request(DatasetLayout.open(request.dataset, request.data_root), request.clip, request.observed,
                     request.future, request.checkpoint, request.predictor)  # bad requests end here, before a flow run
    params = PredictParams(**values)
    try:
        result = predict_flow(params)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    video = result.video
    print(f"wrote {video.frames} frames ({video.observed} observed + {video.future} predicted) to {video.video} "
          f"(observed | predicted | real) and {video.masks} (predicted | real maps)")
    if result.table:
        print_table(f"future prediction on {args.dataset} (per step)", result.table)
        print(f"Prefect artifact: {result.artifact_key}")
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser("predict", help="future video prediction: predicted maps -> vid2vid, side by side")
    field_option(predict, PredictParams, "checkpoint")
    take(predict, LOOKUP_RUNS_ROOT)
    field_option(predict, PredictParams, "predictor")
    field_option(predict, PredictParams, "dataset", required=True)
    for name in ("clip", "observed", "future", "out", "split"):
        field_option(predict, PredictParams, name)
    predict.add_argument("--no-evaluate", action="store_true", help="skip the horizon table")
    predict.add_argument("--no-fid", action="store_true", help="skip frame FID in the horizon table")
    take(predict, WEIGHTS_DIR)
    predict.set_defaults(func=cmd_predict)


# --- rebuild / demo -------------------------------------------------------------------------------------
def _present(**values: object) -> dict[str, object]:
    """Only the options the user gave: the rebuild's step settings keep their own defaults."""
    return {k: v for k, v in values.items() if v is not None}


def cmd_rebuild(args: argparse.Namespace) -> int:
    from flows.rebuild import RebuildParams, rebuild_flow

    params = RebuildParams(**_present(
        src=args.src, dataset=args.dataset, config=args.config, data_root=args.data_root, runs_root=args.runs_root,
        weights_dir=args.weights_dir, config_set=config_set(args),
        preprocess=_present(stages=args.stages, backends=backend_args(args.backend) or None,
                          workers=args.workers, dask_address=args.dask_address),
        train=_present(workers=args.train_workers, ray_address=args.ray_address, max_steps=args.max_steps),
        evaluate=_present(metrics=args.metrics)))
    result = rebuild_flow(params)
    print(f"rebuild of {result.dataset}: {result.clips_ok} clip(s), {len(result.quarantined)} quarantined; "
          f"training {result.train_status}; model {result.model_path}")
    for clip, reason in result.quarantined.items():
        print(f"  quarantined {clip}: {reason}")
    if result.evaluation:
        print_table(f"evaluation of {result.dataset}", result.evaluation)
    print(f"Prefect artifacts: {', '.join(result.artifact_keys)}")
    return 0


def add_rebuild(sub: argparse._SubParsersAction) -> None:
    """The rebuild's form (flows/rebuild.py) holds IngestConfig, whose module decodes video: its own fields'
    options are declared here; the step settings it passes on are generated from those steps' fields (not
    --max-steps: the rebuild's default, 30, is not the field's)."""
    rebuild = sub.add_parser("rebuild", help="the full rebuild: ingest -> preprocess -> train -> evaluate")
    rebuild.add_argument("src", nargs="?", default=None, help="videos to ingest (default: the synthetic street)")
    rebuild.add_argument("--dataset", default=None, help="default: street")
    rebuild.add_argument("--config", default=None, help="model preset or YAML path (default: tiny)")
    take(rebuild, CONFIG_SET)
    field_option(rebuild, PreprocessSettings, "stages")
    rebuild.add_argument("--backend", action="append", default=[], metavar="STAGE=NAME[:k=v,...]",
                         help="as for `preprocess` (repeatable)")
    take(rebuild, DASK_WORKERS)
    field_option(rebuild, TrainSettings, "workers", "--train-workers", dest="train_workers")
    take(rebuild, DASK_ADDRESS, RAY_ADDRESS)
    rebuild.add_argument("--max-steps", type=int, default=None)
    take(rebuild, METRICS, RUNS_ROOT, WEIGHTS_DIR)
    rebuild.set_defaults(func=cmd_rebuild)


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(args.data_root)


def add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the main job on the embedded default data (what `make demo` runs)")
    demo.set_defaults(func=cmd_demo)
