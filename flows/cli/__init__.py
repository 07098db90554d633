"""`vid2vid`: the one command users call. Subcommands run the Prefect flows, so every run shows in the UI.

Layout (so new subcommands merge cleanly): one module per command group (``data``, ``training``, ``outputs``,
``registry``, ``review``), each with one ``cmd_<name>(args) -> int`` and one ``add_<name>(sub)`` per subcommand,
listed in ``SUBCOMMANDS`` here; shared options and options generated from parameter-model fields are declared
once in ``options``. ``main()`` is the single place that turns an exception into one line on stderr and an exit
code (``--debug`` shows the traceback): 2 when the request is wrong (unknown option, bad name, missing input),
1 when the work failed, 130 when interrupted.
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

from flows.cli import data, outputs, registry, review, training  # noqa: E402 - after the server defaults
from flows.cli.options import TRAINING_OPTIONS, add_training_options, size_arg  # noqa: E402, F401 - imported from here

EXIT_FAILED = 1  # the work failed (a flow ended Failed, a stage could not run)
EXIT_USAGE = 2  # the request is wrong: nothing was started
#: subcommands that show progress: bars on a terminal, plain periodic lines otherwise (tasks/progress.py)
LONG_WORK = {"ingest", "synth", "preprocess", "face-demo", "train", "evaluate", "rebuild", "demo", "reference-model"}
#: subcommands that run no flow, so start no Prefect server
NO_SERVER = {"info", "weights", "review", "import-official", "models"}

# One entry per subcommand, in the order `vid2vid --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    data.add_ingest, data.add_synth, data.add_info, data.add_preprocess, data.add_face_demo, registry.add_weights,
    training.add_train, outputs.add_synthesize, outputs.add_evaluate, outputs.add_rebuild, outputs.add_demo,
    training.add_reference_model, training.add_import_official, outputs.add_predict, training.add_train_predictor,
    review.add_review, review.add_study, registry.add_models,
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

