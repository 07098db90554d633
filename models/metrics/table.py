"""The comparison table a reviewer reads: methods as rows (paper's Table 1 layout), metrics as columns.

Cells are short ("12.3", "n/a — weights missing", "184.2 ⚠"); everything longer — which file was
missing, which weights (sha256, origin) fed each FID, how many samples a FID rests on, the scoring
protocol — goes into the notes printed under the table and used as its description.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from models.metric_display import BETTER, FORMATS, LABELLED as _LABELLED, LABELS, cell, header, too_few_samples  # noqa: F401 - re-exported
from models.metrics.names import FIRST_FRAME, METRICS, SCORED_FROM

REFERENCE_METHOD = "real frames (reference)"
BASELINE = "frame-by-frame baseline"


@dataclasses.dataclass(frozen=True)
class ScoredRun:
    run: str
    variant: str
    values: Mapping[str, float | str]
    details: Mapping[str, Mapping]
    clips: int
    config: str


@dataclasses.dataclass(frozen=True)
class Comparison:
    """An evaluation's table: this evaluation's rows (``current``), then the latest earlier rows of runs not
    evaluated now that were computed on the same data; earlier rows on other data are ``stale``, not shown."""

    table: list[dict[str, str]]
    current: list[dict[str, str]]
    stale: list[dict[str, str]]
    notes: list[str]


def compare_runs(runs: Sequence[ScoredRun], metrics: Sequence[str], references: Mapping[str, float | str],
                 evaluated: str, data: str, earlier: Sequence[Mapping], seed_frames: Mapping[str, int]) -> Comparison:
    """This evaluation beside the earlier ones (``earlier``: history rows, oldest first). ``data`` is the
    fingerprint of the clips and frames scored; ``seed_frames``: real frames each run starts from."""
    table = [{**row, "data": data} for row in comparison_rows(runs, metrics, references, evaluated)]
    description = notes(runs, metrics, references)
    for run, given in seed_frames.items():  # official-semantics models start from L real frames (NVIDIA's test.py)
        if given > SCORED_FROM:
            description.append(f"⚠ `{run}` follows NVIDIA's test semantics: its frames 0..{given - 1} are the real "
                               f"frames it starts from, so frames {SCORED_FROM}..{given - 1} of its scored range are real.")
    current = [row for row in table if row["run"] != "—"]
    shown = {run.run for run in runs}
    stale: list[dict[str, str]] = []
    for row in reversed(earlier):  # the latest earlier numbers of runs not evaluated now
        if row.get("run") not in shown and "method" in row:
            shown.add(row["run"])
            row = {**{k: str(row.get(k, "")) for k in table[0]}, "evaluated": f"{row['evaluated']} (earlier)"}
            if row.get("data") == data:  # side by side only when computed on the same clips and frames
                table.append(row)
            else:
                stale.append({**row, "stale": "computed on other data"})
    return Comparison(table, current, stale, description)


def _order(runs: Sequence[ScoredRun]) -> list[ScoredRun]:
    """The baseline first, the full model last, ablations between (Table 1/2 of the paper)."""
    rank = lambda r: 0 if r.variant == BASELINE else (2 if r.variant == "vid2vid" else 1)  # noqa: E731
    return sorted(runs, key=rank)


def comparison_rows(runs: Sequence[ScoredRun], metrics: Sequence[str], references: Mapping[str, float | str],
                    evaluated: str) -> list[dict[str, str]]:
    """Rows ``method | <metric columns> | run | clips | config | evaluated`` plus the real-data reference row."""
    rows = []
    for run in _order(runs):
        rows.append({"method": run.variant, **{m: cell(m, run.values[m], run.details.get(m)) for m in metrics},
                     "run": run.run, "clips": str(run.clips), "config": run.config, "evaluated": evaluated})
    rows.append({"method": REFERENCE_METHOD,
                 **{m: cell(m, references[m]) if m in references else "—" for m in metrics},
                 "run": "—", "clips": str(max((r.clips for r in runs), default=0)), "config": "—",
                 "evaluated": evaluated})
    return rows


def notes(runs: Sequence[ScoredRun], metrics: Sequence[str], references: Mapping[str, float | str]) -> list[str]:
    """The table's description: columns, protocol, weights behind each FID, sample counts, every n/a reason."""
    lines = ["Columns: " + "; ".join(f"`{m}` = {header(m)} ({BETTER.get(m, '')} is better)" for m in metrics) + ".",
             f"Protocol: every method is given the clip's real frame 0 (`first_frame={FIRST_FRAME}`) and is scored on "
             f"frames {SCORED_FROM}..T-1 of every held-out clip; synthesized frames are scored from a lossless copy, "
             "real frames from their PNG shards."]
    if "warp_error" in references:
        lines.append(f"Reference row: `warp_error` of the real clips under the same flows ({cell('warp_error', references['warp_error'])}) "
                     "— near it means the video moves like the real one; far below it can mean a video that barely changes.")
    for metric in metrics:
        if METRICS.get(metric) is None:
            continue
        detail = next((r.details[metric] for r in runs if metric in r.details), None)
        if detail:
            lines.append(f"`{metric}` weights: {detail['weights_file']} sha256 {detail['weights_sha256']} — "
                         f"{detail.get('weights_origin', '')}; verification: {detail.get('weights_verification', '?')}.")
            n_fake = sorted({r.details[metric]['n_fake'] for r in runs if metric in r.details})
            lines.append(f"`{metric}` samples: {'/'.join(map(str, n_fake))} synthesized vs {detail['n_real']} real; "
                         f"floor (reference row) = real validation vs {detail['n_reference']} real training samples.")
            if too_few_samples(detail):
                lines.append(f"⚠ `{metric}` rests on fewer samples than its {detail['feature_dim']} feature dimensions: "
                             "the value is biased upward and noisy; compare runs only on the same clips, and against "
                             "the floor rather than against published numbers.")
        if isinstance(references.get(metric), str):
            lines.append(f"`{metric}` floor: {references[metric]}.")
    reasons = sorted({f"`{m}`: {run.values[m]}" for run in runs for m in metrics
                      if isinstance(run.values[m], str) and not _LABELLED.fullmatch(run.values[m])})
    lines += [f"n/a {reason}" for reason in reasons]
    return lines
