"""Outputs users name (``--out``, ``--frames-dir``, ...) never land on what the pipeline manages.

Two roots hold managed files: the data root (a dataset's manifest, shards, quarantine: ``storage.layout``)
and the runs root, checked here. Under the runs root the pipeline owns every run folder's model file,
checkpoints, Ray state, TensorBoard events, metrics and summaries, the ``latest-<dataset>.json`` pointers,
the evaluations and the review app's database; a user's mp4 or frames folder may sit beside them, never on
them. Paths are resolved through symlinks first. The files a command reads (its checkpoint) are refused as
outputs wherever they are. An allowed output that already exists is replaced atomically by its writer
(``storage.atomic`` / ``VideoWriter`` / ``FrameFolderWriter``), never truncated in place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from storage import locations
from storage.errors import ManagedPathError
from storage.layout import check_output_path

#: folders the pipeline owns wherever they appear under the runs root (Ray's storage_path is <run>/ray)
MANAGED_DIRS = ("ray", "tensorboard", "evaluations", "review", "checkpoints", "superseded", ".locks")
#: files a run folder holds (models/training: launch.py, loop.py, ray_jobs.py; tasks/train.py)
MANAGED_FILES = ("model.pt", "checkpoint.pt", "summary.json", "metrics.jsonl", "attempts.jsonl", "progress.json",
                 "nan_stop.json", "artifacts.json", "job.json", ".failure_injected", "review.db")
#: kinds of file that are ours under the runs root whatever their name (models, records, databases)
MANAGED_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".json", ".jsonl", ".db", ".db-wal", ".db-shm", ".sqlite",
                    ".parquet")
#: what marks a folder as a run folder (a training run writes these first)
RUN_MARKERS = ("summary.json", "metrics.jsonl", "attempts.jsonl", "model.pt", "ray", "job.json")


def _is_run_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / marker).exists() for marker in RUN_MARKERS)


def _runs_roots(extra: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    roots = [locations.runs_root().resolve()]
    roots += [Path(r).expanduser().resolve() for r in extra if r]
    return list(dict.fromkeys(roots))


def _managed_reason(resolved: Path, root: Path) -> str | None:
    """Why ``resolved`` (a path under the runs root ``root``) is the pipeline's, or None."""
    parts = resolved.relative_to(root).parts
    for part in parts[:-1]:
        if part in MANAGED_DIRS:
            return f"inside the runs root's managed folder {part!r}"
    name = resolved.name
    if name in MANAGED_DIRS:
        return f"the runs root's managed folder {name!r}"
    if resolved.is_dir() and _is_run_folder(resolved):
        return "a run folder"
    kind = None
    if name in MANAGED_FILES:
        kind = f"a run's managed file {name!r}"
    elif name.startswith("latest-") and name.endswith(".json"):
        kind = "a dataset's latest-run pointer"
    elif resolved.suffix in MANAGED_SUFFIXES:
        kind = f"a {resolved.suffix} file under the runs root (models, checkpoints, records, databases)"
    # an existing one is the pipeline's; a new one is refused where the pipeline writes them (a run folder, the
    # root itself) and allowed in a new folder of its own (e.g. `import-official --out runs/official/model.pt`)
    if kind and (resolved.exists() or resolved.parent == root or _is_run_folder(resolved.parent)):
        return kind
    return None


def _run_folder_of(path: Path) -> Path | None:
    for folder in path.parents:
        if _is_run_folder(folder):
            return folder
    return None


def _roots_and_inputs(runs_roots: Iterable[str | os.PathLike[str] | None],
                      inputs: Iterable[str | os.PathLike[str] | None]) -> tuple[list[Path], list[Path]]:
    """The runs roots to guard (the default one, the given ones, and the one holding each input's run folder)
    and the inputs, resolved."""
    given = [Path(path).expanduser().resolve() for path in inputs if path]
    extra = [run.parent for run in map(_run_folder_of, given) if run is not None]
    return _runs_roots([*runs_roots, *extra]), given


def check_output(out: str | os.PathLike[str], option: str, *, data_root: str | os.PathLike[str] | None = None,
                 runs_roots: Iterable[str | os.PathLike[str] | None] = (),
                 inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Resolve a user-named output and refuse one that is a managed file (data root or runs root) or one of
    the command's own inputs; returns the resolved path. Raises ``ManagedPathError`` (a wrong request: exit 2)."""
    resolved = check_output_path(out, data_root)
    roots, given = _roots_and_inputs(runs_roots, inputs)
    if resolved in given:
        raise ManagedPathError(f"refusing to write {option} {str(out)!r}: it resolves to {resolved}, which this "
                               f"command reads; choose another file")
    for root in roots:
        if resolved == root or resolved in root.parents:
            raise ManagedPathError(f"refusing to write {option} {str(out)!r}: it resolves to {resolved}, which holds "
                                   f"the runs root {root}")
        if root in resolved.parents:
            reason = _managed_reason(resolved, root)
            if reason:
                raise ManagedPathError(f"refusing to write {option} {str(out)!r}: it resolves to {resolved}, {reason}; "
                                       f"choose an output outside the pipeline's files")
    return resolved


def check_output_dir(folder: str | os.PathLike[str], option: str, *, data_root: str | os.PathLike[str] | None = None,
                     runs_roots: Iterable[str | os.PathLike[str] | None] = (),
                     inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """``check_output`` for a folder of outputs (the data root's own rules in ``check_frames_dir``): also
    refuses an existing, non-empty folder directly under a runs root (a run's or another tool's)."""
    inputs = list(inputs)
    resolved = check_output(folder, option, data_root=data_root, runs_roots=runs_roots, inputs=inputs)
    roots, _ = _roots_and_inputs(runs_roots, inputs)
    for root in roots:
        if resolved.parent == root and resolved.exists() and any(resolved.iterdir()):
            raise ManagedPathError(f"refusing to write {option} {str(folder)!r}: {resolved} is a folder of the runs "
                                   f"root {root}; choose a new folder inside a run folder or elsewhere")
    return resolved


def check_synthesis_outputs(out: str, frames_dir: str | None, side_by_side: bool,
                            data_root: str | os.PathLike[str] | None,
                            inputs: Iterable[str | None]) -> tuple[Path, Path | None, Path | None]:
    """`synthesize`'s outputs resolved and checked: --out, its ``.side_by_side.mp4`` and --frames-dir (the
    data root's frames-folder rules included). Cheap (no torch): the CLI calls it before a flow run starts."""
    from storage.frame_folder import check_frames_dir

    root = locations.data_root(data_root).resolve()
    guard = {"data_root": root, "inputs": list(inputs)}
    resolved = check_output(out, "--out", **guard)
    review = (check_output(resolved.with_name(resolved.stem + ".side_by_side.mp4"), "--out's side-by-side file", **guard)
              if side_by_side else None)
    folder = check_frames_dir(check_output_dir(frames_dir, "--frames-dir", **guard), root) if frames_dir else None
    return resolved, review, folder
