"""The demo's look at the shipped reference models (reference_models/): the street table (short runs beside
the references, one table), the face table, their goals MET/MISSED, and a contact sheet per dataset.

Called once by `make demo` after its own comparison (``flows.demo``); it trains nothing, so it costs the
evaluation of the shipped files (seconds) plus, for the face, building the carphone dataset once. With no
shipped model it says so and the demo goes on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prefect import flow

from flows.evaluate import EvaluateParams, EvaluationResult, evaluate_flow
from flows.reference import ReferenceDataParams, reference_data_flow
from flows.naming import templated
from models.metrics.names import DEFAULT_METRICS
from models.metrics.reference_goals import face_goals, street_goals
from models.reference.card import reference_dir, shipped_models
from models.reference.recipe import load_recipe
from storage.atomic import atomic_write_bytes
from storage.layout import DatasetLayout
from tasks.artifacts import artifact_key, data_uri, publish_markdown, publish_table

SHEET_FRAMES = (1, 8, 16, 23)  # the contact sheet's frames: synthesized above real, per method
REAL = "real frames (reference)"
EVALUATION = "shipped-reference"  # runs/evaluations/<dataset>/shipped-reference/: the review app's evaluation name
METRIC_ORDER = ("fid_inception", "warp_error", "psnr", "ssim", "fid_i3d", "fid_resnext101")


def _rows_by_method(table: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The rows evaluated now, by method (earlier evaluations' rows, which the table carries along, left out)."""
    rows: dict[str, dict[str, str]] = {}
    for row in table:
        if not str(row.get("evaluated", "")).endswith("(earlier)"):
            rows.setdefault(row["method"], row)
    return rows


def _labelled(row: dict[str, str], label: str, steps: object) -> dict[str, str]:
    cells = {m: row[m] for m in METRIC_ORDER if m in row}
    return {"method": label, **cells, "steps": str(steps), "run": row.get("run", "—")}


def _lossless(evaluations: list[dict]) -> dict[str, tuple[str, str]]:
    """method (variant) -> (first held-out clip id, its lossless synthesized file)."""
    found = {}
    for evaluation in evaluations:
        clips = [c for c in evaluation.get("clips", []) if c.get("lossless")]
        if clips:
            found[evaluation["variant"]] = (clips[0]["clip_id"], clips[0]["lossless"])
    return found


def contact_sheet(layout: DatasetLayout, blocks: list[tuple[str, str, str]], size: tuple[int, int]) -> np.ndarray:
    """Per method (label, clip id, lossless file): frames ``SHEET_FRAMES`` synthesized in one row, the same real
    frames in the row below. Frames a clip lacks are left out."""
    from models.metrics.lossless import read_lossless
    from models.training.review import frame_grid
    from storage.clip_reader import iter_clip_frames

    drawn = []
    for label, clip, lossless in blocks:
        fake = list(read_lossless(lossless))
        real = [f["rgb"] for f in iter_clip_frames(layout, clip, ("rgb",), size)]
        picks = [i for i in SHEET_FRAMES if i < min(len(fake), len(real))]
        if not picks:
            continue
        drawn.append((f"{label}: frames {', '.join(map(str, picks))} (synthesized above real)",
                      [np.concatenate([fake[i] for i in picks], axis=1),
                       np.concatenate([real[i] for i in picks], axis=1)]))
    return frame_grid(drawn, scale=2)


def _sheet(layout: DatasetLayout, out_dir: str, name: str, blocks: list[tuple[str, str, str]],
           size: tuple[int, int]) -> tuple[str, str] | None:
    from models.training.review import png_bytes

    if not blocks:
        return None
    picture = png_bytes(contact_sheet(layout, blocks, size))
    path = Path(out_dir) / f"contact_sheet_{name}.png"
    atomic_write_bytes(path, picture)
    key = publish_markdown(artifact_key("demo", name, "contact-sheet"), "\n".join([
        f"### Contact sheet: {name}", "", f"Frames {', '.join(map(str, SHEET_FRAMES))} of the first held-out clip; "
        "per method the synthesized frames above the real ones.", "", f"![contact sheet]({data_uri(picture)})", "",
        f"File: `{path}`"]), f"{name}: synthesized above real, per method")
    return str(path), key


def _evaluate(dataset: str, runs: list[str], root: str, runs_root: str) -> EvaluationResult:
    """The shipped models as the evaluation ``EVALUATION`` of ``dataset`` (the review app lists it by that name),
    so the demo's own latest comparison stays as it is."""
    out = Path(runs_root) / "evaluations" / dataset / EVALUATION
    return evaluate_flow(EvaluateParams(dataset=dataset, runs=runs, metrics=list(DEFAULT_METRICS), data_root=root,
                                        runs_root=runs_root, out_dir=str(out)))


@dataclass
class _Part:
    """One dataset's share of the report: its table, artifacts, contact sheet, goals and notes."""
    table: list[dict[str, str]]
    keys: list[str] = field(default_factory=list)
    sheet: tuple[str, str] | None = None  # (path, artifact key)
    goals: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@flow(name="demo-reference-models", log_prints=True, flow_run_name=templated("demo reference models"))
def demo_reference_flow(root: str, runs: str, comparison_json: str, short_steps: int) -> dict:
    """``comparison_json``: the demo's own evaluation of its short runs (its rows join the street table)."""
    started = time.perf_counter()
    shipped = {m.name: m for m in shipped_models() if m.card is not None}
    short = json.loads(Path(comparison_json).read_text()) if Path(comparison_json).is_file() else {"table": [],
                                                                                                   "evaluations": []}
    parts = {"street": _street(shipped, short, short_steps, root, runs)}
    if any(n in shipped for n in ("face_frame", "face")):
        parts["face"] = _face(shipped, root, runs)
    lines = [] if shipped else [
        f"shipped reference models: none in {reference_dir()} (`make reference-models` builds them); the street "
        "table has the short runs only and there is no face table"]
    lines += [note for part in parts.values() for note in part.notes]
    goals = [g for part in parts.values() for g in part.goals]
    keys = [k for part in parts.values() for k in part.keys] + [p.sheet[1] for p in parts.values() if p.sheet]
    lines += _table_lines(parts)
    if goals:
        lines += ["", "reference goals:", *["  " + g.line() for g in goals]]
        keys.append(publish_markdown(artifact_key("demo", "reference-goals"), "\n".join(
            ["## Goals of the shipped reference models", "", *[f"- {g.line()}" for g in goals]]),
            "the shipped reference models' goals, met or missed"))
    sheets = [p.sheet[0] for p in parts.values() if p.sheet]
    if sheets:
        lines.append("contact sheets: " + ", ".join(sheets))
    lines.append(f"shipped reference models evaluated in {time.perf_counter() - started:.0f} s")
    return {"lines": lines, "tables": {name: p.table for name, p in parts.items()},
            "goals": [g.line() for g in goals], "artifacts": keys, "sheets": sheets}


def _street(shipped: dict, short: dict, short_steps: int, root: str, runs: str) -> _Part:
    """The short runs (from the demo's comparison) beside the shipped street references: one table, one sheet."""
    layout = DatasetLayout(Path(root), load_recipe("street").data.dataset)
    short_rows = _rows_by_method(short["table"])
    refs = [n for n in ("street_frame", "street") if n in shipped]
    evaluation = _evaluate(layout.dataset, [f"reference:{n}" for n in refs], root, runs) if refs else None
    ref_rows = _rows_by_method(evaluation.table) if evaluation else {}
    steps = {n: shipped[n].card.steps for n in refs}
    methods = (("frame-by-frame baseline", "frame-by-frame"), ("vid2vid", "vid2vid"))
    table = [_labelled(short_rows[m], f"{label} (short)", short_steps) for m, label in methods if m in short_rows]
    table += [_labelled(ref_rows[m], f"{label} (reference)", steps[n])
              for n, (m, label) in zip(("street_frame", "street"), methods) if n in steps and m in ref_rows]
    real = ref_rows.get(REAL) or short_rows.get(REAL)
    if real:
        table.append(_labelled(real, "real frames", "—"))
    part = _Part(table, [publish_table(artifact_key("demo", "street", "reference-table"), table,
                                       "street: short runs and the shipped reference models, held-out clips")])
    blocks = [(f"{label} (short)", *clip) for m, label in methods
              if (clip := _lossless(short.get("evaluations", [])).get(m))]
    ref_clips = _lossless([e.model_dump() for e in evaluation.evaluations]) if evaluation else {}
    blocks += [(f"{label} (reference)", *ref_clips[m]) for m, label in methods if m in ref_clips]
    part.sheet = _sheet(layout, str(Path(runs) / "evaluations" / layout.dataset), "street", blocks,
                        load_recipe("street").data.size)
    if evaluation and {"street", "street_frame"} <= set(refs):
        by_variant = {e.variant: e.values for e in evaluation.evaluations}
        part.goals = street_goals(by_variant.get("vid2vid", {}), by_variant.get("frame-by-frame baseline", {}),
                                  evaluation.evaluations[0].references, part.sheet[0] if part.sheet else "no sheet")
        data = evaluation.table[0].get("data")
        part.notes = [f"note: reference {n} was scored on other held-out data (card {card_data}, demo {data}): its "
                      "card's numbers and these differ for that reason"
                      for n in refs if (card_data := shipped[n].card.data.heldout_fingerprint) != data]
    return part


def _face(shipped: dict, root: str, runs: str) -> _Part:
    """The shipped face references on the carphone clip's held-out quarter: one table, one sheet."""
    refs = [n for n in ("face_frame", "face") if n in shipped]
    data = reference_data_flow(ReferenceDataParams(name=refs[-1], data_root=root))
    face = _evaluate(data.dataset, [f"reference:{n}" for n in refs], root, runs)
    rows = _rows_by_method(face.table)
    # the face preset has no fg/bg prior (a face has no background classes): its variant is named for that
    vid2vid = next((m for m in rows if m.startswith("vid2vid")), "vid2vid")
    pairs = (("face_frame", "frame-by-frame baseline", "frame-by-frame"), ("face", vid2vid, vid2vid))
    table = [_labelled(rows[m], f"{label} (reference)", shipped[n].card.steps)
             for n, m, label in pairs if n in refs and m in rows]
    if REAL in rows:
        table.append(_labelled(rows[REAL], "real frames", "—"))
    part = _Part(table, [publish_table(artifact_key("demo", "face", "reference-table"), table,
                                       "face (carphone, last quarter held out): the shipped reference models")])
    clips = _lossless([e.model_dump() for e in face.evaluations])
    part.sheet = _sheet(DatasetLayout(Path(root), data.dataset), face.out_dir, "face",
                        [(f"{label} (reference)", *clips[m]) for _, m, label in pairs if m in clips],
                        tuple(load_recipe(refs[-1]).data.size))
    if {"face", "face_frame"} <= set(refs):
        by_variant = {e.variant: e.values for e in face.evaluations}
        part.goals = face_goals(by_variant.get(vid2vid, {}), by_variant.get("frame-by-frame baseline", {}),
                                part.sheet[0] if part.sheet else "no sheet")
    return part


def _table_lines(parts: dict[str, _Part]) -> list[str]:
    lines = []
    for name, part in parts.items():
        columns = list(part.table[0]) if part.table else []
        lines += ["", f"{name}: short runs and shipped reference models (held-out clips)" if name == "street"
                  else f"{name}: shipped reference models (carphone clip, last quarter held out)",
                  "  " + " | ".join(columns), *["  " + " | ".join(r[c] for c in columns) for r in part.table]]
    return lines
