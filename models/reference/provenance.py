"""What a model card records about where a model came from: the machine, the code commit, the time segments
of a resumed training, and the card rendered as markdown."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from models.reference.card import Machine, ModelCard, Segment

REPO_ROOT = Path(__file__).resolve().parents[2]
LEDGER = "reference.json"  # in a finished reference run's folder: every training segment up to it


def machine() -> Machine:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return Machine(platform=platform.platform(), python=platform.python_version(), torch=torch.__version__, cpu=cpu,
                   cpu_count=os.cpu_count() or 0, gpu=gpu, niceness=os.nice(0))


def code_commit(root: Path = REPO_ROOT) -> tuple[str, bool]:
    """(HEAD's commit, whether tracked code differs from it); ("unknown", True) outside a git checkout. The shipped
    folder itself is left out of the dirty check: the command writes it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!reference_models"],
                                cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(status)


def run_folder_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint belongs to (its model.pt, or a Ray checkpoint deep under ray/)."""
    for folder in [checkpoint.parent, *checkpoint.parents]:
        if (folder / "attempts.jsonl").is_file() or (folder / LEDGER).is_file():
            return folder
    return None


def _step_seconds(run: Path, start: int, end: int) -> float:
    total = 0.0
    if (run / "metrics.jsonl").is_file():
        by_step = {}
        for line in (run / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line)
            by_step[row.get("step", 0)] = float(row.get("seconds_per_step", 0.0))  # a restart redoes steps: latest
        total = sum(v for k, v in by_step.items() if start < k <= end)
    return round(total, 1)


def segments_until(checkpoint: Path, step: int) -> list[Segment]:
    """The training segments that led to ``checkpoint`` (at ``step``), oldest first. A finished reference run's
    ledger holds them; a run that never finished (killed) counts the sum of its steps' times up to ``step``
    (Ray start-up not counted, marked ``estimated``), after the segments of the checkpoint it resumed from
    (its attempts.jsonl says which)."""
    run = run_folder_of(checkpoint.resolve())
    if run is None:
        return []
    if (run / LEDGER).is_file():
        done = [Segment.model_validate(s) for s in json.loads((run / LEDGER).read_text()).get("segments", [])]
        if done and done[-1].end_step == step:
            return done
    lines = (run / "attempts.jsonl").read_text().splitlines() if (run / "attempts.jsonl").is_file() else []
    first = json.loads(lines[0]) if lines else {}
    start, origin = int(first.get("start_step", 0)), str(first.get("origin", ""))
    resumed = origin.removeprefix("resume-from:") if origin.startswith("resume-from:") else None
    before = segments_until(Path(resumed), start) if resumed and start > 0 else []
    return [*before, Segment(run_dir=str(run), start_step=start, end_step=step, seconds=_step_seconds(run, start, step),
                             resumed_from=resumed, estimated=True)]


def _value(value: float | str) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_markdown(card: ModelCard) -> str:
    """The card as a page a person reads (the JSON beside it is what code reads)."""
    wall = card.wall_time
    hours = wall.training_seconds / 3600
    lines = [
        f"# Reference model `{card.name}` ({card.method})", "",
        f"Preset `{card.preset}` ({card.config['input']['width']}x{card.config['input']['height']}), "
        f"**{card.steps} training steps** (budget {card.budget_steps}). {card.budget_note}", "",
        "## Reproduce", "", "```bash", card.command, "```", "",
        f"Data: `{card.data.regenerate}` ({card.data.kind}, dataset `{card.data.dataset}`).", "",
        "## Held-out scores", "",
        f"{card.heldout.clips} held-out clip(s) ({', '.join(card.data.heldout_clips)}), "
        f"{card.heldout.frames_scored} scored frames. Protocol: {card.heldout.protocol}", "",
        "| metric | this model | real frames (reference) |", "| --- | --- | --- |",
        *[f"| {k} | {_value(v)} | {_value(card.heldout.references.get(k, '—'))} |"
          for k, v in card.heldout.metrics.items()], "",
        "## Provenance", "",
        f"- file: `{card.file}`, {card.size_bytes / 2**20:.2f} MiB, {card.dtype} ({', '.join(card.parts)}), "
        f"sha256 `{card.sha256}`",
        f"- training wall time: {wall.training_seconds:.0f} s ({hours:.2f} h) over {len(wall.segments)} segment(s); "
        f"last command end to end {wall.last_command_seconds:.0f} s",
        *[f"  - steps {s.start_step}→{s.end_step}: {s.seconds:.0f} s (`{Path(s.run_dir).name}`"
          + (f", resumed from `{s.resumed_from}`" if s.resumed_from else "") + ")" for s in wall.segments],
        f"- machine: {card.machine.cpu} ({card.machine.cpu_count} CPUs), GPU {card.machine.gpu}, "
        f"{card.machine.platform}, Python {card.machine.python}, torch {card.machine.torch}, nice {card.machine.niceness}",
        f"- code: commit `{card.code_commit}`{' (with uncommitted changes)' if card.code_dirty else ''}",
        f"- training data fingerprint `{card.data.train_fingerprint}`, held-out data `{card.data.heldout_fingerprint}`"
        + (f", source video sha256 `{card.data.source_sha256}`" if card.data.source_sha256 else ""),
        f"- trained: {card.trained_at}", "",
        f"Use it: `vid2vid train --init-from reference:{card.name} --config {card.preset} ...` (fine-tuning), "
        f"`vid2vid evaluate --runs reference:{card.name} ...`, `vid2vid synthesize --checkpoint reference:{card.name} ...`.",
        "",
    ]
    return "\n".join(lines)
