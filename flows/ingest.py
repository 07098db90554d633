"""Ingest flows: source videos (or the synthetic street) → rgb shards + manifest, one task per clip."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.failures import EnvironmentFailure, NothingIngested
from flows.forms import SynthParams, SynthSettings  # noqa: F401 - SynthSettings: imported from here too
from flows.naming import dataset_tag, run_name
from flows.params import FlowParams
from tasks.artifacts import artifact_key, publish_table
from storage.errors import BadInputError, SourceError, StorageEnvironmentError
from storage.ingest import IngestConfig, clip_ids
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, merge_records
from storage.synthetic import clip_seed, synthetic_splits
from storage.target import Target, resolve_target
from storage.video import discover
from tasks.ingest import ingest_clip_task, synth_clip_task
from tasks.progress import collect, track


class IngestParams(FlowParams):
    src: str = Field(description="a video file, a folder of videos, or frame-sequence folders")
    dataset: str = Field(description="the dataset to ingest into (created if new)")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    config: IngestConfig = Field(default_factory=IngestConfig, description="frame policy, codec, split")


class IngestSummary(BaseModel):
    dataset: str
    data_root: str
    clips_ok: int
    frames: int
    quarantined: dict[str, str]  # clip id -> reason
    records: list[ClipRecord]
    artifact_key: str


def _publish(layout: DatasetLayout, records: list[ClipRecord], kind: str, source: str) -> IngestSummary:
    """The artifact and the summary of what was ingested; no clip at all is a failure of the flow."""
    ok = [r for r in records if r.status == "ok"]
    bad = {r.clip_id: r.error for r in records if r.status != "ok"}
    key = publish_table(
        artifact_key(kind, layout.dataset),
        [{"clip": r.clip_id, "status": r.status, "split": r.split, "frames": r.n_frames, "fps": round(r.fps, 2),
          "size": f"{r.width}x{r.height}", "error": r.error or "none"} for r in records],
        f"**{kind}** into `{layout.base}`: {len(ok)} clip(s) ok, {sum(r.n_frames for r in ok)} frames, "
        f"{len(bad)} quarantined.",
    )
    summary = IngestSummary(dataset=layout.dataset, data_root=str(layout.root), clips_ok=len(ok),
                            frames=sum(r.n_frames for r in ok), quarantined=bad, records=records, artifact_key=key)
    if not ok:
        first = next(iter(bad.items()), ("", "no clip found"))
        raise NothingIngested(f"no clip of {source} was ingested into {layout.dataset!r}: {len(bad)} quarantined "
                              f"(first: {first[0]}: {first[1]})", detail=summary)
    return summary


_INGEST_NAME = run_name("ingest", IngestParams, lambda p: f"{p.dataset} from {Path(p.src).name or p.src}", dataset_tag)
_SYNTH_NAME = run_name("synth", SynthParams, lambda p: f"{p.dataset} {p.clips} clips", dataset_tag)


@flow(name="ingest", log_prints=True, flow_run_name=_INGEST_NAME)
def ingest_flow(params: IngestParams) -> IngestSummary:
    """Decode every clip under ``src`` into rgb shards; bad clips are quarantined with a reason, the rest go on.
    The deployment's and the CLI's entry: resolves the target, then runs the shared body."""
    return ingest(params, resolve_target(params.dataset, params.data_root))


@flow(name="ingest", log_prints=True, flow_run_name=_INGEST_NAME)
def ingest_step(params: IngestParams, target: Target) -> IngestSummary:
    """The same flow as a step of a caller that resolved the target already (the full rebuild)."""
    return ingest(params, target)


def ingest(params: IngestParams, target: Target) -> IngestSummary:
    """The body of the ingest flow: ``params.src`` into ``target``'s dataset (its params' own dataset and
    data root were resolved into ``target`` by the caller)."""
    logger = get_run_logger()
    layout = target.layout
    try:
        sources = discover(params.src)
    except BadInputError as exc:  # the request names nothing to ingest: no clip to record, nothing written
        raise SourceError(f"nothing to ingest: {exc} (no clip was touched)") from None
    ids = clip_ids(sources)
    futures = [ingest_clip_task.submit(layout, source, cid, params.config)
               for source, cid in zip(sources, ids)]
    records, failures = _gather(futures, f"ingest {layout.dataset}")
    for record in records:
        if record.status != "ok":
            logger.warning("quarantined %s: %s", record.clip_id, record.error)
    merge_records(layout, records)  # what was ingested before a failure is kept and counted
    if failures:
        ok = [r.clip_id for r in records if r.status == "ok"]
        raise EnvironmentFailure(f"{failures[0]}{f' (and {len(failures) - 1} more)' if len(failures) > 1 else ''}; "
                                 f"{len(ok)} clip(s) ingested and kept{': ' + ', '.join(ok[:10]) if ok else ''}")
    return _publish(layout, records, "ingest", params.src)


def _gather(futures: list, label: str) -> tuple[list[ClipRecord], list[StorageEnvironmentError]]:
    """Every clip's record, and the environment failures (disk full, permissions) that stopped some clips:
    the others' work is kept, the failures fail the flow afterwards."""
    records, failures = [], []
    with track(label, len(futures), "clips") as tracker:
        for future in futures:
            try:
                records.append(future.result())
            except StorageEnvironmentError as exc:
                failures.append(exc)
            tracker.advance()
    return records, failures


@flow(name="synthesize-street-dataset", log_prints=True, flow_run_name=_SYNTH_NAME)
def synth_flow(params: SynthParams) -> IngestSummary:
    """The embedded default dataset: seeded synthetic street clips with exact labels, instances and flow."""
    return synth(params, resolve_target(params.dataset, params.data_root))


@flow(name="synthesize-street-dataset", log_prints=True, flow_run_name=_SYNTH_NAME)
def synth_step(params: SynthParams, target: Target) -> IngestSummary:
    """The same flow as a step of a caller that resolved the target already (the full rebuild)."""
    return synth(params, target)


def synth(params: SynthParams, target: Target) -> IngestSummary:
    """The body of the synthetic-street flow, into ``target``'s dataset."""
    layout = target.layout
    splits = synthetic_splits(params.clips, params.val_fraction)
    width, height = params.size
    futures = [synth_clip_task.submit(layout, f"street_{params.seed:04d}_{k:03d}",
                                      clip_seed(params.seed, k), width, height, params.frames, split)
               for k, split in enumerate(splits)]
    records = collect(futures, f"synthesize {layout.dataset}")
    merge_records(layout, records)
    return _publish(layout, records, "synth", "the synthetic street")
