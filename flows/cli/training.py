"""Commands that make models: train, train-predictor, reference-model, import-official."""

from __future__ import annotations

import argparse
import os
import sys

from flows.cli.options import (CONFIG_SET, RAY_ADDRESS, RUNS_ROOT, WEIGHTS_DIR, add_training_options, config_set,
                               field_option, form, take)
from flows.forms import ReferenceParams, TrainParams, TrainPredictorParams


def cmd_train(args: argparse.Namespace) -> int:
    from flows.train import train_flow

    result = train_flow(form(args, TrainParams, config_set=config_set(args)))
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


def add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="distributed vid2vid training on Ray Train")
    field_option(train, TrainParams, "dataset", required=True)
    field_option(train, TrainParams, "config")
    take(train, CONFIG_SET)
    add_training_options(train, "workers", "gpus_per_worker")
    field_option(train, TrainParams, "run_name")
    take(train, RUNS_ROOT, RAY_ADDRESS)
    field_option(train, TrainParams, "resume_from")
    field_option(train, TrainParams, "init_from", metavar="MODEL")
    add_training_options(train, "max_steps", "epochs", "checkpoint_every")
    field_option(train, TrainParams, "mode")
    field_option(train, TrainParams, "gate")
    take(train, WEIGHTS_DIR)
    train.set_defaults(func=cmd_train)


def cmd_train_predictor(args: argparse.Namespace) -> int:
    from flows.predict import train_predictor_flow

    result = train_predictor_flow(form(args, TrainPredictorParams))
    print(f"predictor training {result.status}: {result.message}")
    print(f"run folder: {result.run_dir}\nPrefect artifact: {result.artifact_key}")
    return 0 if result.status == "completed" else 1


def add_train_predictor(sub: argparse._SubParsersAction) -> None:
    train_predictor = sub.add_parser("train-predictor", help="train the future mask predictor on Ray Train")
    field_option(train_predictor, TrainPredictorParams, "dataset", required=True)
    field_option(train_predictor, TrainPredictorParams, "config")
    add_training_options(train_predictor, "workers", "gpus_per_worker")
    field_option(train_predictor, TrainPredictorParams, "run_name")
    take(train_predictor, RUNS_ROOT, RAY_ADDRESS)
    field_option(train_predictor, TrainPredictorParams, "resume_from")
    add_training_options(train_predictor, "max_steps", "epochs", "checkpoint_every")
    train_predictor.set_defaults(func=cmd_train_predictor)


# --- shipped reference models ----------------------------------------------------------------------------
def cmd_reference_model(args: argparse.Namespace) -> int:
    from flows.reference import reference_model_flow
    from models.reference.recipe import load_recipe

    load_recipe(args.name)  # an unknown name is refused before any server or Ray starts
    if args.nice:  # Ray's workers are started from this process and inherit its priority
        os.nice(max(0, args.nice - os.nice(0)))
    result = reference_model_flow(form(args, ReferenceParams))
    print(f"data: dataset {result.data.dataset} under {result.data.data_root}, held out: "
          f"{', '.join(result.data.heldout_clips)}")
    if result.model_path:
        print(f"reference model {result.name}: {result.steps} steps -> {result.model_path}")
        print("held-out: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in result.heldout.items()))
        print(f"card: {result.card_path} (and card.md); {result.seconds:.0f} s")
    return 0


def add_reference_model(sub: argparse._SubParsersAction) -> None:
    ref = sub.add_parser("reference-model", help="train, pack and card one shipped reference model "
                                                 "(configs/reference/NAME.yaml) into reference_models/NAME/")
    field_option(ref, ReferenceParams, "name")
    field_option(ref, ReferenceParams, "steps")
    field_option(ref, ReferenceParams, "workers", "--train-workers", "--workers")
    field_option(ref, ReferenceParams, "resume_from", metavar="CKPT|latest")
    field_option(ref, ReferenceParams, "data_only")
    ref.add_argument("--nice", type=int, default=19, help="run at this niceness (default 19; 0 leaves it)")
    field_option(ref, ReferenceParams, "runs_root")
    field_option(ref, ReferenceParams, "out_dir")
    take(ref, WEIGHTS_DIR)
    field_option(ref, ReferenceParams, "metrics")
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


def add_import_official(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import-official", help="NVIDIA's released vid2vid checkpoints -> our model file")
    imp.add_argument("--checkpoint-dir", required=True, help="the official experiment folder (latest_net_G0.pth ...)")
    imp.add_argument("--preset", default=None, help="model preset or YAML (default: opt.txt's experiment name)")
    imp.add_argument("--out", default="model.pt", help="our model file to write")
    imp.add_argument("--epoch", default="latest", help="the official files' epoch label")
    imp.add_argument("--single-frame", default=None, help="the pix2pixHD first-frame generator file, if not beside")
    imp.add_argument("--no-discriminators", action="store_true",
                     help="leave out latest_net_D.pth / latest_net_D_T*.pth even when present")
    imp.set_defaults(func=cmd_import_official)
