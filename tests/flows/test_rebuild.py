"""The full rebuild as users run it: in this process on the session's Dask scheduler (found through the environment,
as a deployment finds it) with a local Ray, then as a deployment run by a Prefect process worker on the session's
Dask scheduler and Ray head."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.rebuild import RebuildParams, rebuild_flow
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.synthetic import StreetScene
from storage.video import encode
from tests.conftest import ROOT, VENV_BIN
from tests.services import stop_process_groups

pytestmark = pytest.mark.usefixtures("prefect_server")


def _stage_mtimes(layout: DatasetLayout) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (layout.base / "stages").rglob("*.parquet")}


def test_rebuild_from_videos_quarantines_the_corrupt_one_and_reruns_skip_everything(shared_dask, vid2vid, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(3):
        encode(videos / f"drive{k}.mp4", (f["rgb"] for f in StreetScene(64, 64, 10, seed=40 + k).frames()), fps=10)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2048))
    params = RebuildParams(src=str(videos), dataset="drives", data_root=str(tmp_path / "data"),
                           runs_root=str(tmp_path / "runs"), config="tiny_face", preprocess={"workers": 1},
                           train={"max_steps": 3, "workers": 1}, evaluate={"metrics": ["warp"]})
    first = rebuild_flow(params)
    assert first.clips_ok == 3 and list(first.quarantined) == ["broken"]
    assert "broken" in first.quarantined["broken"] and first.train_status == "completed"
    assert float(first.evaluation[0]["warp_error"]) >= 0 and Path(first.model_path).is_file()
    layout = DatasetLayout(tmp_path / "data", "drives")
    assert layout.stages() == ["flow", "rgb", "sketch"]
    assert {r.clip_id: r.status for r in read_manifest(layout)}["broken"] == "quarantined"

    async def named_runs_and_summary():
        async with get_client() as client:
            runs = await client.read_flow_runs(sort="START_TIME_DESC", limit=20)
            latest = {a.key: a for a in await client.read_latest_artifacts()}
            return {run.name: run for run in runs}, latest["rebuild-drives"].data, latest
    runs, summary, latest = asyncio.run(named_runs_and_summary())
    assert {"rebuild drives tiny_face", "ingest drives from videos", "preprocess drives sketch,flow",
            "evaluate drives 1 run"} <= set(runs), sorted(runs)
    assert {"dataset:drives", "config:tiny_face"} <= set(runs["rebuild drives tiny_face"].tags)
    assert any(name.startswith("train drives tiny_face-") for name in runs)
    for key in ("preprocess-drives", "train-drives", "evaluate-drives"):  # the versions this rebuild made, its own
        assert f"/v2/artifacts/artifact/{latest[key].latest_id})" in summary, key

    before = _stage_mtimes(layout)
    second = rebuild_flow(params)
    assert second.train_status == "unchanged" and second.model_path == first.model_path
    assert second.evaluation_skipped and second.evaluation == first.evaluation
    assert _stage_mtimes(layout) == before  # ingest and every preprocessing stage skipped

    again = vid2vid("--data-root", str(tmp_path / "data"), "rebuild", str(videos), "--dataset", "drives", "--config",
                    "tiny_face", "--workers", "1", "--runs-root", str(tmp_path / "runs"), "--max-steps", "3")
    assert again.returncode == 0, again.stderr
    assert "training unchanged" in again.stdout and "quarantined broken" in again.stdout
    assert _stage_mtimes(layout) == before


@pytest.mark.parametrize("option, reason", [
    (("--backend", "flow=dis:prest=fast"), "preprocess.backends.flow.prest: Extra inputs are not permitted"),
    (("--backend", "flow=dis:arch=resnet101"), "backend 'dis' has no option 'arch'"),
    (("--metrics", "warp,fid-bogus"), "unknown metrics ['fid-bogus']"),
])
def test_rebuild_refuses_unknown_options_and_metrics_before_ingesting(vid2vid, tmp_path, option, reason):
    done = vid2vid("--data-root", str(tmp_path / "data"), "rebuild", "--runs-root", str(tmp_path / "runs"), *option)
    assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()  # nothing was started


def test_rebuild_with_nothing_to_ingest_fails_in_one_line(vid2vid, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"garbage" * 50)
    done = vid2vid("--data-root", str(tmp_path / "data"), "rebuild", str(videos), "--dataset", "empty",
                   "--runs-root", str(tmp_path / "runs"))
    assert done.returncode == 1 and f"error: no clip of {videos} was ingested into 'empty'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


@pytest.fixture
def cluster_services(shared_services, tmp_path):
    """What docker-compose.yml starts, as plain processes on loopback: the session's Dask scheduler + workers
    and Ray head, and here a Prefect process worker on the deployments of prefect.yaml (the Prefect server is
    the session's)."""
    env = {**os.environ, **shared_services, "VID2VID_PROJECT_DIR": str(ROOT),
           "VID2VID_DATA_ROOT": str(tmp_path / "data"), "VID2VID_RUNS_ROOT": str(tmp_path / "runs"),
           "RAY_AUTH_MODE": "disabled"}
    logs = open(tmp_path / "services.log", "wb")
    started: list[subprocess.Popen] = []
    try:
        subprocess.run([str(VENV_BIN / "prefect"), "work-pool", "create", "vid2vid-process", "--type", "process",
                        "--overwrite"], env=env, check=True, stdout=logs, stderr=subprocess.STDOUT, timeout=120)
        subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", "deploy", "--all"], env=env, check=True, cwd=ROOT,
                       stdout=logs, stderr=subprocess.STDOUT, timeout=300)
        started.append(subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "vid2vid-process",
                                         "--type", "process"], env=env, cwd=ROOT, stdout=logs,
                                        stderr=subprocess.STDOUT, start_new_session=True))
        yield env
    finally:
        stop_process_groups(started)
        logs.close()


def _ray_jobs(address: str) -> dict[str, bool]:
    """The Ray head's job table: driver id -> whether it came and went (this query's own driver is alive). Read
    by a driver process of its own: this test process has been a driver of the same head already."""
    code = ("import json, sys, ray; ray.init(address=sys.argv[1]); "
            "print(json.dumps({str(j['JobID']): bool(j['IsDead']) for j in ray._private.state.jobs()})); ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rebuild_deployment_runs_on_the_cluster_services(cluster_services, tmp_path):
    from prefect.deployments import run_deployment

    drivers_before = set(_ray_jobs(cluster_services["VID2VID_RAY_ADDRESS"]))  # the session's earlier drivers too

    parameters = {"params": {"dataset": "street", "synth": {"clips": 3, "frames": 10, "size": [64, 32]},
                             "train": {"max_steps": 2, "workers": 2}, "evaluate": {"metrics": ["warp"]}}}
    flow_run = run_deployment("full-rebuild/full-rebuild", parameters=parameters, timeout=900)
    log = (tmp_path / "services.log").read_text(errors="replace")
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{log[-4000:]}"

    async def deployments():
        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    deployed = asyncio.run(deployments())
    assert {"full-rebuild", "preprocess", "train", "evaluate", "scheduled-retraining"} <= set(deployed)
    assert "0 3 * * *" in str(deployed["scheduled-retraining"].schedules[0].schedule)
    runs = Path(cluster_services["VID2VID_RUNS_ROOT"])
    assert list(runs.glob("street-tiny-*/model.pt")) and (runs / "evaluations" / "street" / "comparison.json").is_file()
    ray_address = cluster_services["VID2VID_RAY_ADDRESS"]
    [summary] = runs.glob("street-tiny-*/summary.json")
    assert json.loads(summary.read_text())["job"]["ray_address"] == ray_address  # resolved from the environment
    # the head's job table: a driver other than this test came and went during the deployment run
    finished = {job for job, dead in _ray_jobs(ray_address).items() if dead} - drivers_before
    assert finished, "no training driver connected to the Ray head the environment names"
    layout = DatasetLayout(Path(cluster_services["VID2VID_DATA_ROOT"]), "street")
    assert layout.stages() == ["flow", "instance", "rgb", "semantic"]
