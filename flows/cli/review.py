"""Commands of human review: the review web app (`review`) and preference studies (`study`)."""

from __future__ import annotations

import argparse

from flows.cli.console import print_table
from flows.cli.options import REGISTRY, RUNS_ROOT, csv, take


def cmd_review(args: argparse.Namespace) -> int:
    from review.commands import serve
    from storage.locations import runs_root

    return serve(runs_root(args.runs_root), args.host, args.port, args.db_url)


def add_review(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="the review web app: evaluations' videos and metrics, preference studies")
    review.add_argument("--host", default="127.0.0.1")
    review.add_argument("--port", type=int, default=4300)
    take(review, RUNS_ROOT)
    review.add_argument("--db-url", default=None,
                        help="votes database (default: $VID2VID_REVIEW_DB_URL or SQLite <runs_root>/review/review.db)")
    review.set_defaults(func=cmd_review)


def cmd_study(args: argparse.Namespace) -> int:
    from review import commands
    from storage.locations import runs_root

    root = runs_root(args.runs_root)
    if args.action == "create":
        commands.create_study(root, args.dataset, csv(args.runs) or [], args.clips, args.kind, args.evaluation,
                              args.raters, args.attention_checks, args.db_url)
    elif args.action == "raters":
        commands.add_raters(root, args.study, args.add, args.db_url)
    else:
        rows = commands.show_results(root, args.dataset, args.study, not args.no_publish, args.db_url)
        print_table("human preference studies", rows)
    return 0


def add_study(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="human preference studies: create one, add raters, tally the votes")
    actions = study.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[REGISTRY], help="A vs B on clips of an evaluation; one link per rater")
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
    raters = actions.add_parser("raters", parents=[REGISTRY], help="more rater links for a study")
    raters.add_argument("--study", required=True)
    raters.add_argument("--add", type=int, default=1)
    results = actions.add_parser("results", parents=[REGISTRY],
                                 help="A / B preference, 95%% Wilson interval, votes; publishes the artifact")
    results.add_argument("--dataset", default=None)
    results.add_argument("--study", default=None)
    results.add_argument("--no-publish", action="store_true", help="print only, no Prefect artifact")
    study.set_defaults(func=cmd_study)
