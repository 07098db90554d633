"""Evaluations at rest: ``<runs_root>/evaluations/<dataset>/comparison.json``, the table the evaluation flow
wrote last (tasks/evaluate_publish.py writes it; review/catalog.py reads it for the pages)."""

from __future__ import annotations

import json
from pathlib import Path

COMPARISON_FILE = "comparison.json"


def evaluated_rows(out: Path, run: str) -> list[dict[str, str]] | None:
    """The rows of ``run`` in the comparison written under ``out``; None when there is none, or it has none."""
    comparison = out / COMPARISON_FILE
    if not comparison.is_file():
        return None
    table = json.loads(comparison.read_text())["table"]
    rows = [row for row in table if row["run"] == run]
    return rows or None
