"""What a preprocessing run did: per-stage counts from its outcomes and failures, and the run's summary.

A pure rule (no Prefect): the preprocess flow tallies the outcomes its tasks returned (``tally``), quarantines
the clips a stage refused, publishes the table (``summary_rows``, tasks/preprocess_publish.py) and returns
the ``PreprocessSummary``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.preprocess.clip import StageOutcome


class StageSummary(BaseModel):
    stage: str
    backend: str
    clips: int = 0
    written: int = 0
    skipped: int = 0
    validated: int = 0
    quarantined: dict[str, str] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    frames: int = 0
    empty_frames: int = 0
    seconds: float = 0.0
    computed_frames: int = 0  # frames this run computed (written), not skipped or only validated
    computed_seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Real throughput: frames computed per task-second; 0 when nothing was computed."""
        return self.computed_frames / self.computed_seconds if self.computed_seconds > 0 else 0.0

    @property
    def throughput(self) -> str:
        if self.computed_frames:
            return f"{self.frames_per_second:.2f}"
        if self.validated:
            return "n/a (validated, not computed)"
        return "n/a (unchanged, skipped)" if self.skipped else "n/a"


class PreprocessSummary(BaseModel):
    dataset: str
    data_root: str
    stages: dict[str, StageSummary]
    outcomes: list[StageOutcome]
    quarantined: dict[str, str]  # clip -> reasons
    failed: dict[str, str]  # "stage/clip" -> error
    wall_seconds: float
    artifact_key: str


def tally(backends: dict[str, str], outcomes: list[StageOutcome],
          failed: dict[str, str]) -> tuple[dict[str, StageSummary], dict[str, list[str]]]:
    """Per-stage counts (``backends``: stage -> backend, in the run's order), and every quarantined clip's
    reasons (one per stage that refused it)."""
    stages = {s: StageSummary(stage=s, backend=backend) for s, backend in backends.items()}
    reasons: dict[str, list[str]] = {}
    for o in outcomes:
        s = stages[o.stage]
        s.clips += 1
        s.seconds += o.seconds
        if o.status == "quarantined":
            s.quarantined[o.clip_id] = o.error
            reasons.setdefault(o.clip_id, []).append(o.error)
            continue
        setattr(s, o.status, getattr(s, o.status) + 1)
        s.frames += o.frames
        if o.status == "written":
            s.computed_frames += o.frames
            s.computed_seconds += o.seconds
        s.empty_frames += o.empty
    for key, error in failed.items():
        stage, clip = key.split("/", 1)
        stages[stage].clips += 1
        stages[stage].failed[clip] = error
    return stages, reasons


def summary_rows(stages: dict[str, StageSummary]) -> list[dict[str, Any]]:
    """The summary artifact's table: one row per stage."""
    return [{"stage": s.stage, "backend": s.backend, "clips": s.clips, "written": s.written, "skipped": s.skipped,
             "validated": s.validated, "frames": s.frames, "task seconds": round(s.seconds, 2),
             "computed frames/s": s.throughput, "empty frames": s.empty_frames,
             "quarantined": "; ".join(f"{c}: {e}" for c, e in s.quarantined.items()) or "none",
             "failed": "; ".join(f"{c}: {e}" for c, e in s.failed.items()) or "none"} for s in stages.values()]


def summarize(root: str, dataset: str, stages: dict[str, StageSummary], outcomes: list[StageOutcome],
              reasons: dict[str, list[str]], failed: dict[str, str], wall: float, key: str) -> PreprocessSummary:
    """The run's summary: its stages' counts, every outcome, each quarantined clip's reasons joined."""
    return PreprocessSummary(dataset=dataset, data_root=root, stages=stages, outcomes=outcomes,
                             quarantined={c: "; ".join(e) for c, e in reasons.items()}, failed=failed,
                             wall_seconds=wall, artifact_key=key)
