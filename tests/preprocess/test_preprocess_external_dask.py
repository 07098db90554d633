"""The preprocess flow on a Dask cluster someone else runs: a `dask scheduler` and `dask worker` processes on
loopback, named only by ``$VID2VID_DASK_ADDRESS`` (as docker-compose.yml does). The tasks must run on
those workers, not on a local cluster the flow would start by itself."""

from __future__ import annotations

import os
import subprocess

import pytest
from distributed import Client

from flows.preprocess import PreprocessParams, preprocess_flow
from models.preprocess.registry import BackendSettings
from storage.layout import DatasetLayout
from storage.manifest import merge_records
from storage.shards import ShardReader
from storage.synthetic import write_synthetic_clip
from tests.conftest import ROOT, VENV_BIN
from tests.services import free_port, stop_process_groups

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def dask_services(tmp_path):
    """A scheduler and two single-threaded worker processes, stopped again by process group."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "wb")
    started = []

    def spawn(*args: str) -> None:
        started.append(subprocess.Popen([str(VENV_BIN / "dask"), *args], cwd=ROOT, env=os.environ.copy(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True))
    try:
        spawn("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        spawn("worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        stop_process_groups(started)
        log.close()


def _executed(address: str) -> dict[str, int]:
    with Client(address, timeout=60) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


def test_preprocess_flow_runs_its_tasks_on_the_dask_workers_the_environment_names(dask_services, data_root,
                                                                                  monkeypatch):
    layout = DatasetLayout(data_root, "street")
    merge_records(layout, [write_synthetic_clip(layout, f"s{k}", 20 + k, 64, 32, 3) for k in range(2)])
    before = _executed(dask_services)
    assert len(before) == 2

    monkeypatch.setenv("VID2VID_DASK_ADDRESS", dask_services)
    summary = preprocess_flow(PreprocessParams(dataset="street", data_root=str(data_root), stages=["flow", "semantic"],
                                               backends={"flow": BackendSettings(backend="dis", preset="ultrafast"),
                                                         "semantic": BackendSettings(backend="dataset")}))
    assert summary.stages["flow"].written == 2 and summary.stages["semantic"].validated == 2
    assert len(ShardReader(layout.shard_path("flow", "s1"))) == 3

    after = _executed(dask_services)
    ran = {worker: after[worker] - before[worker] for worker in after}
    assert sum(ran.values()) == 4, ran  # 2 clips x 2 stages, every one on the external workers
