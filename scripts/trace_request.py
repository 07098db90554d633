"""Trace one request through a tiny full rebuild: where its strings are turned into objects, and how often
each model file is opened (issue 22, item 1: "resolve once, pass objects").

Run: ``python scripts/trace_request.py`` (a tiny street rebuild, ``--config tiny --max-steps 2 --metrics warp``,
through ``flows.cli.main`` in this process, into a temporary folder; with ``PREFECT_API_URL`` unset the CLI starts
its own temporary Prefect server, a local Dask cluster and a local Ray, as a user's command does). ``--json``
prints the counts as JSON; ``--max-climbs N`` exits 1 when more than N climbs (or a model file opened twice by one
consumer) are found.

What is traced: every Python call in this process, on every thread (``sys.setprofile`` and
``threading.setprofile``). Ray's training workers and Dask's preprocessing workers are other processes and are
not traced: the driver side is what counts. Nothing in the tracing imports Prefect.

Definitions (also in docs/DESIGN.md, "Parameters"):

- **Our packages**: the files under ``flows/``, ``tasks/``, ``models/``, ``storage/`` and ``review/``.
- **A resolution**: a call that turns the request's strings into the objects the pipeline works with
  (``RESOLVERS`` below): ``storage.target.resolve_target``; the roots and service addresses of
  ``storage.locations`` (``data_root``, ``runs_root``, ``reference_runs_root``, ``weights_dir``, ``dask_address``,
  ``ray_address``) and their aliases ``storage.layout.data_root`` and ``models.weights.weights_dir``; the dataset
  name check (``check_name(name, "dataset")``; a clip, stage or run name checked while a path is built is not
  the request's); a ``DatasetLayout`` constructed (``DatasetLayout(...)``, ``DatasetLayout.open``); a model
  config loaded from a name or path (``load_model_config``) or validated from plain data
  (``ModelConfig.model_validate`` of anything but a ``ModelConfig``, which passes through unchanged); a quality
  gate loaded (``load_gate``); a shipped model's name turned into its file (``resolve_model_file``).
  A resolution made inside another one (``resolve_target`` calls ``locations.data_root``; ``DatasetLayout``
  checks its name; ``load_model_config`` validates) is part of it and not counted again.
- **Its caller site**: the innermost frame of our packages outside the resolution, skipping the parameter
  models' own code (``flows/forms.py``, ``flows/params.py`` and any method of a ``FlowParams`` form): a form is
  validated where it is built or where Prefect validates a flow's parameters, so the site is the frame
  outward of it that built it or called the flow. A resolution with no caller site (only Prefect's or a
  library's frames) is listed apart, as "outside", and is neither.
- **At the entry**: the caller site is the CLI (``flows/cli/``), a public flow wrapper (a function of ``flows/``
  whose name ends in ``_flow``: ``rebuild_flow``, ``train_flow`` ...), or ``resolve_target`` itself.
- **A climb back up**: any other caller site — a step sub-flow (``*_step``) or a body it calls, a run-name hook,
  a task, a model or storage function — resolving again what the entry resolved once and could have passed
  down as an object.
- **A model file opened**: a call of ``torch.load`` (every checkpoint loader of ours, ``torch_load_safely``,
  ends there) with the file's resolved path. **Its consumer**: the run on whose behalf it is read, named by the
  outermost of the contiguous frames of our packages around the call — the function Prefect's engine (or a
  thread) called: a task (``evaluate_run_task``), a flow (``train_step``), a run-name hook. "Once per consumer"
  means every (file, consumer) pair is opened once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "models", "storage", "review")
#: the parameter models: a form's validators run where the form is built or validated (see the docstring)
FORM_FILES = ("flows/forms.py", "flows/params.py")

#: the tiny rebuild the script runs (the options tests/flows/test_quiet_console.py runs the CLI with)
REBUILD_ARGS = ("rebuild", "--dataset", "trace", "--config", "tiny", "--max-steps", "2", "--metrics", "warp",
                "--workers", "1", "--train-workers", "1")


def _ours(filename: str) -> str | None:
    """The path relative to the repository of a file in our packages, else None."""
    if not filename.startswith(_ROOT_PREFIX):
        return None
    relative = filename[len(_ROOT_PREFIX):]
    return relative if relative.split("/", 1)[0] in PACKAGES else None


_ROOT_PREFIX = str(ROOT) + os.sep


def resolvers() -> dict[CodeType, tuple[str, Callable[[FrameType], bool] | None]]:
    """code object → (the resolution's name, a test of its frame saying whether this call counts, or None)."""
    from pydantic import BaseModel

    from models.gate import load_gate
    from models.reference.registry import resolve_model_file
    from models.vid2vid.config import ModelConfig, load_model_config
    from models import weights
    from storage import layout, locations, target

    def dataset_name(frame: FrameType) -> bool:
        return frame.f_locals.get("what") == "dataset"

    def model_config_from_data(frame: FrameType) -> bool:
        local = frame.f_locals
        return local.get("cls") is ModelConfig and not isinstance(local.get("obj"), ModelConfig)

    table: dict[CodeType, tuple[str, Callable[[FrameType], bool] | None]] = {
        target.resolve_target.__code__: ("resolve_target", None),
        layout.check_name.__code__: ("check_name(dataset)", dataset_name),
        layout.DatasetLayout.__post_init__.__code__: ("DatasetLayout(...)", None),
        layout.DatasetLayout.open.__func__.__code__: ("DatasetLayout.open", None),
        layout.data_root.__code__: ("layout.data_root", None),
        weights.weights_dir.__code__: ("weights.weights_dir", None),
        load_model_config.__code__: ("load_model_config", None),
        BaseModel.model_validate.__func__.__code__: ("ModelConfig.model_validate", model_config_from_data),
        load_gate.__code__: ("load_gate", None),
        resolve_model_file.__code__: ("resolve_model_file", None),
    }
    for name in ("data_root", "runs_root", "reference_runs_root", "weights_dir", "dask_address", "ray_address"):
        table[getattr(locations, name).__code__] = (f"locations.{name}", None)
    return table


@dataclass
class Resolution:
    name: str
    site: str | None  # file:line of the caller site, None: outside our packages
    function: str | None
    entry: bool


@dataclass
class Trace:
    """What one traced request did: its resolutions and its model files opened."""

    resolutions: list[Resolution] = field(default_factory=list)
    opens: list[tuple[str, str]] = field(default_factory=list)  # (file, consumer)

    @property
    def climbs(self) -> list[Resolution]:
        return [r for r in self.resolutions if r.site is not None and not r.entry]

    def per_function(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"entry": 0, "climbs": 0, "outside": 0, "sites": []})
        for r in self.resolutions:
            row = rows[r.name]
            if r.site is None:
                row["outside"] += 1
            elif r.entry:
                row["entry"] += 1
            else:
                row["climbs"] += 1
                row["sites"].append(f"{r.site} ({r.function})")
        return dict(sorted(rows.items()))

    def opens_per_consumer(self) -> dict[tuple[str, str], int]:
        return dict(Counter(self.opens))

    def repeated_opens(self) -> dict[tuple[str, str], int]:
        """(file, consumer) pairs opened more than once: the goal is none."""
        return {pair: n for pair, n in self.opens_per_consumer().items() if n > 1}

    def to_json(self) -> dict[str, Any]:
        return {"climbs": len(self.climbs), "at_entry": sum(1 for r in self.resolutions if r.entry),
                "resolutions": self.per_function(),
                "opens": [{"file": f, "consumer": c, "count": n} for (f, c), n in self.opens_per_consumer().items()]}

    def table(self) -> str:
        lines = [f"{'resolution':<30} {'entry':>5} {'climbs':>6} {'outside':>7}  climbing from"]
        for name, row in self.per_function().items():
            sites = Counter(row["sites"])
            first = True
            for site, n in sorted(sites.items()) or [("", 0)]:
                label = f"{site}{f' ×{n}' if n > 1 else ''}"
                if first:
                    lines.append(f"{name:<30} {row['entry']:>5} {row['climbs']:>6} {row['outside']:>7}  {label}")
                    first = False
                else:
                    lines.append(f"{'':<52}  {label}")
        entry = sum(1 for r in self.resolutions if r.entry)
        lines.append(f"{'total':<30} {entry:>5} {len(self.climbs):>6} "
                     f"{sum(1 for r in self.resolutions if r.site is None):>7}")
        lines += ["", f"{'opens':>5}  model file  <-  consumer"]
        for (path, consumer), n in sorted(self.opens_per_consumer().items()):
            lines.append(f"{n:>5}  {path}  <-  {consumer}")
        if not self.opens:
            lines.append("    0  (no model file opened)")
        return "\n".join(lines)


class Tracer:
    """``with Tracer() as trace:`` records the resolutions and model-file opens of everything run inside, on
    this thread and on threads started inside (``threading.setprofile``)."""

    def __init__(self) -> None:
        import torch

        self.resolvers = resolvers()
        self.torch_load = torch.load.__code__
        from flows.params import FlowParams

        self.form_class = FlowParams
        self.trace = Trace()
        self._lock = threading.Lock()

    def __enter__(self) -> Trace:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)

    # the profile hook runs on every call: the first test is one dict lookup
    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        code = frame.f_code
        found = self.resolvers.get(code)
        if found is not None:
            name, counts = found
            if (counts is None or counts(frame)) and not self._inside_resolution(frame):
                self._record(name, frame)
        elif code is self.torch_load:
            self._opened(frame)

    def _inside_resolution(self, frame: FrameType) -> bool:
        outer = frame.f_back
        while outer is not None:
            found = self.resolvers.get(outer.f_code)
            if found is not None and (found[1] is None or found[1](outer)):
                return True
            outer = outer.f_back
        return False

    def _form_code(self, frame: FrameType, relative: str) -> bool:
        if relative in FORM_FILES:
            return True
        local = frame.f_locals
        owner = local.get("self", local.get("cls"))
        form = self.form_class
        return isinstance(owner, form) or (isinstance(owner, type) and issubclass(owner, form))

    def _record(self, name: str, frame: FrameType) -> None:
        outer = frame.f_back
        while outer is not None:
            relative = _ours(outer.f_code.co_filename)
            if relative is not None and outer.f_code not in self.resolvers and not self._form_code(outer, relative):
                function = outer.f_code.co_name
                entry = relative.startswith("flows/cli/") or (relative.startswith("flows/") and function.endswith("_flow"))
                resolution = Resolution(name, f"{relative}:{outer.f_lineno}", function, entry)
                break
            outer = outer.f_back
        else:
            resolution = Resolution(name, None, None, False)
        with self._lock:
            self.trace.resolutions.append(resolution)

    def _opened(self, frame: FrameType) -> None:
        given = frame.f_locals.get("f")
        try:
            path = str(Path(os.fspath(given)).resolve())  # type: ignore[arg-type]
        except TypeError:
            path = repr(given)  # a file object or buffer
        consumer, outer = None, frame.f_back
        while outer is not None:  # the outermost of the contiguous frames of ours around the call
            relative = _ours(outer.f_code.co_filename)
            if relative is not None:
                consumer = f"{relative}:{outer.f_code.co_name}"
            elif consumer is not None:
                break
            outer = outer.f_back
        with self._lock:
            self.trace.opens.append((path, consumer or "outside our packages"))


def run_cli(argv: Sequence[str]) -> int:
    from flows.cli import main

    try:
        return int(main(list(argv)) or 0)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


def trace_rebuild(folder: Path, extra: Sequence[str] = ()) -> tuple[Trace, int]:
    """The tiny rebuild (``REBUILD_ARGS`` plus ``extra``) into ``folder``/data and ``folder``/runs, traced."""
    argv = ["--data-root", str(folder / "data"), *REBUILD_ARGS, "--runs-root", str(folder / "runs"), *extra]
    tracer = Tracer()
    with tracer as trace:
        code = run_cli(argv)
    # the paths in the report are read relative to the rebuild's folder
    base = str(folder.resolve()) + os.sep
    trace.opens = [(path.replace(base, ""), consumer) for path, consumer in trace.opens]
    return trace, code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--keep", help="rebuild into this folder (kept) instead of a temporary one")
    parser.add_argument("--max-climbs", type=int, default=None,
                        help="exit 1 when more climbs than this, or a model file opened twice by one consumer")
    args, extra = parser.parse_known_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="vid2vid-trace-") as temporary:
        folder = Path(args.keep) if args.keep else Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        trace, code = trace_rebuild(folder, extra)
    if code != 0:
        print(f"the traced rebuild failed (exit {code})", file=sys.stderr)
        return code
    print(json.dumps(trace.to_json(), indent=2) if args.json else trace.table())
    if args.max_climbs is not None and (len(trace.climbs) > args.max_climbs or trace.repeated_opens()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
