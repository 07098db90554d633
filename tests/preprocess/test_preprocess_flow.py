"""The preprocess flow on 2 Dask workers against a real Prefect server: every stage shard, a second run
skips all, bad input is quarantined with its reason, missing weights fail the stage by file name."""

import asyncio
import json
import os

import numpy as np
import pytest
from prefect.client.orchestration import get_client

from flows.preprocess import PreprocessFailed, PreprocessParams, preprocess_flow
from models.preprocess.registry import BackendSettings
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, merge_records, read_manifest
from storage.shards import ShardReader
from storage.stages import write_stage
from storage.synthetic import write_synthetic_clip
from tests.services import free_port

pytestmark = pytest.mark.usefixtures("prefect_server")
STAGES = ["semantic", "instance", "flow", "sketch", "pose"]


def _street(root, clips=2):
    layout = DatasetLayout(root, "street")
    merge_records(layout, [write_synthetic_clip(layout, f"s{k}", 10 + k, 64, 32, 3) for k in range(clips)])
    return layout


def _params(root, **kw):
    backends = {"semantic": BackendSettings(backend="dataset"), "instance": BackendSettings(backend="dataset"),
                "flow": BackendSettings(backend="dis")}
    return PreprocessParams(dataset="street", data_root=str(root), stages=STAGES, backends=backends, workers=2, **kw)


def _mtimes(layout):
    return {p: p.stat().st_mtime_ns for p in (layout.base / "stages").rglob("*.parquet")}


def test_flow_on_two_dask_workers_builds_every_stage_then_skips_all(data_root):
    layout = _street(data_root)
    thread_env = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    summary = preprocess_flow(_params(data_root))
    # the local cluster's worker settings stay in its workers: this process's later threads keep every core
    assert {key: os.environ.get(key) for key in thread_env} == thread_env
    for stage in STAGES:
        for clip in ("s0", "s1"):
            reader = ShardReader(layout.shard_path(stage, clip))
            assert len(reader) == 3 and (reader.meta.height, reader.meta.width) == (32, 64)
    assert summary.stages["flow"].written == 2 and summary.stages["semantic"].validated == 2
    assert summary.stages["sketch"].written == 2 and summary.stages["pose"].written == 2
    assert summary.stages["pose"].empty_frames == 6  # no person is big enough at 64x32 for mediapipe
    flow = ShardReader(layout.shard_path("flow", "s0")).read()
    assert [f["has_flow"] for f in flow] == [True, True, False] and flow[0]["occlusion"].dtype == np.uint8
    assert not summary.quarantined and not summary.failed

    before = _mtimes(layout)
    again = preprocess_flow(_params(data_root))
    assert _mtimes(layout) == before  # nothing rewritten
    assert all(again.stages[s].skipped == 2 for s in ("flow", "sketch", "pose"))
    assert again.stages["pose"].empty_frames == 6  # counted from the existing shards

    async def artifacts():
        async with get_client() as client:
            return {a.key: a for a in await client.read_latest_artifacts()}
    found = asyncio.run(artifacts())
    assert "preprocess-street" in found and "skipped" in str(found["preprocess-street"].data)
    assert found["preprocess-progress-street"].data == 100.0
    rows = found["preprocess-street"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert all(str(cell).strip() not in ("-", "", "*") for row in rows for cell in row.values())  # no bullet cells
    by_stage = {row["stage"]: row for row in rows}
    # the second run computed nothing: no throughput is claimed for skipped or validated stages
    assert by_stage["flow"]["computed frames/s"] == "n/a (unchanged, skipped)"
    assert by_stage["semantic"]["computed frames/s"].startswith("n/a (validated")
    assert float(summary.stages["flow"].throughput) > 0  # the first run computed the flow stage
    # every shard current and no labels to validate: known before a cluster starts, so none is started or
    # joined (the scheduler address named here has nobody listening)
    nobody = f"tcp://127.0.0.1:{free_port()}"
    current = preprocess_flow(_params(data_root, dask_address=nobody).model_copy(update={"stages": ["flow", "sketch", "pose"]}))
    assert all(current.stages[s].skipped == 2 for s in ("flow", "sketch", "pose")) and not current.failed
    assert current.stages["pose"].empty_frames == 6 and _mtimes(layout) == before


def test_preprocess_runs_are_named_and_tagged(data_root):
    _street(data_root, clips=1)
    preprocess_flow(_params(data_root).model_copy(update={"stages": ["flow", "semantic"]}))

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs(sort="START_TIME_DESC", limit=10)
    names = {run.name: run for run in asyncio.run(runs())}
    assert "preprocess street flow,semantic" in names and "preprocess street flow,semantic on dask" in names
    assert "dataset:street" in names["preprocess street flow,semantic"].tags


def test_bad_input_is_quarantined_and_missing_weights_fail_the_stage(data_root, tmp_path):
    layout = _street(data_root, clips=3)
    # s1: labels with an id that is not a Cityscapes train id; s2: the rgb shard disappeared
    write_stage(layout, "semantic", "s1", backend="broken", config={}, code_version="t",
                frames=lambda: ({"payload": np.full((32, 64), 40, np.uint8)} for _ in range(3)))
    layout.shard_path("rgb", "s2").unlink()
    params = _params(data_root).model_copy(update={"stages": ["semantic", "flow"]})
    summary = preprocess_flow(params)
    assert set(summary.quarantined) == {"s1", "s2"}
    assert "unknown label ids [40]" in summary.quarantined["s1"]
    assert "missing upstream rgb shard" in summary.quarantined["s2"]
    manifest = {r.clip_id: r for r in read_manifest(layout)}
    assert manifest["s1"].status == "quarantined" and "[40]" in manifest["s1"].error
    assert layout.quarantine_path("s2").is_file() and manifest["s0"].status == "ok"

    merge_records(layout, [ClipRecord(clip_id="s0", source="x", height=32, width=64, n_frames=3)])
    weights = tmp_path / "no-weights"
    params = params.model_copy(update={"stages": ["semantic"], "weights_dir": str(weights),
                                       "backends": {"semantic": BackendSettings(backend="torchvision")}})
    with pytest.raises(PreprocessFailed) as failure:
        preprocess_flow(params)
    assert "deeplabv3_resnet50_coco-cd0a2569.pth" in failure.value.detail.failed["semantic/s0"]
    assert str(weights) in str(failure.value)


def test_cli_preprocess(data_root, vid2vid):
    _street(data_root, clips=1)
    done = vid2vid("--data-root", str(data_root), "preprocess", "--dataset", "street", "--stages", "flow,semantic",
                   "--backend", "flow=dis:preset=fast", "--backend", "semantic=dataset", "--workers", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "preprocess-street" in done.stdout and "dis" in done.stdout
    said = done.stdout + done.stderr  # not a terminal: plain lines, ending with the count and the time taken
    assert "[preprocess street] started: 2 tasks" in said and "[preprocess street] done: 2 tasks in" in said, said[-3000:]
    for backend, reason in (("flow=nope", "unknown backend 'nope'"), ("flow=dis:prest=fast", "backends.flow.prest"),
                            ("flow=dis:arch=resnet101", "backend 'dis' has no option 'arch'"),
                            ("pose=dis", "unknown pose backend 'dis'")):
        bad = vid2vid("--data-root", str(data_root), "preprocess", "--dataset", "street", "--backend", backend)
        assert bad.returncode == 2 and reason in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
