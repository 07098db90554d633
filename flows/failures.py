"""One failure convention for every flow (docs/DESIGN.md, "Failures").

A flow whose work failed raises a ``PipelineFailure``: Prefect records the run as Failed with this
one-line reason, the calling flow (the full rebuild) fails with it, and the CLI prints it as one line
with exit code 1. Partial successes (some clips quarantined) are not failures: the flow completes and
its artifact counts what was set aside. No Prefect import here, so the CLI can name these types cheaply.
"""

from __future__ import annotations

from typing import Any


def one_line(text: str, limit: int = 600) -> str:
    """Collapse a message to a single line (state messages and the CLI show one line)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class PipelineFailure(RuntimeError):
    """The work of a flow failed. ``detail`` carries the flow's summary for whoever wants to show it."""

    def __init__(self, reason: str, detail: Any = None) -> None:
        super().__init__(one_line(reason))
        self.detail = detail


class NothingIngested(PipelineFailure):
    """No clip of the source could be ingested (each one's reason is in the summary and quarantine/)."""


class PreprocessFailed(PipelineFailure):
    """Some stage could not run (missing weights, no mediapipe venv): the summary says which and why."""


class TrainingFailed(PipelineFailure):
    """Training stopped without a model (a non-finite loss); the last good checkpoint is named and kept."""


class EnvironmentFailure(PipelineFailure):
    """The machine failed the work (disk full, permissions), naming the path; no input was marked bad for it."""
