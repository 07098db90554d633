"""The README's deployment sequence, followed literally: `make server` (here: the session's Prefect server),
`make deploy`, `make worker` in its own process, then `prefect deployment run`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from urllib.parse import urlparse

import pytest

from storage.loopback import stop_process_groups

from tests.conftest import ROOT, VENV_BIN


def _make(target: str, **kwargs) -> list[str]:
    venv = VENV_BIN.parent
    port = urlparse(os.environ["PREFECT_API_URL"]).port
    # -o: the venv is already installed (the Make rule would otherwise (re)create it)
    return ["make", "--no-print-directory", "-o", f"{venv}/.installed", target, f"VENV={venv}", f"PREFECT_PORT={port}",
            *(f"{k}={v}" for k, v in kwargs.items())]


@pytest.fixture
def worker(prefect_server, tmp_path):
    deployed = subprocess.run(_make("deploy"), cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env=os.environ.copy())
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(_make("worker"), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "2",
                                    "VID2VID_RUNS_ROOT": str(tmp_path / "runs")}, start_new_session=True)
    yield process
    # the whole group, make's child worker included: make exits on SIGTERM at once while the Prefect worker may
    # linger, and a lingering worker would pick up later tests' flow runs from the same work pool
    stop_process_groups([process])
    log.close()


def test_make_deploy_and_worker_run_the_deployments_and_evaluate_refuses_an_empty_run_list(worker):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async def deployments() -> dict:
        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    deployed = asyncio.run(deployments())
    assert {"full-rebuild", "preprocess", "train", "evaluate", "scheduled-retraining"} <= set(deployed)
    nightly = deployed["scheduled-retraining"].schedules[0]
    assert "0 3 * * *" in str(nightly.schedule) and nightly.active is False  # deployed paused, as the README says

    started = time.monotonic()
    run = run_deployment("evaluate/evaluate", timeout=300)  # the form's default: runs: []
    assert run.state.is_failed(), run.state
    assert "no runs to evaluate" in str(run.state.message) + str(run.state.result(raise_on_failure=False))

    async def artifacts() -> list:
        async with get_client() as client:
            return [a for a in await client.read_latest_artifacts() if a.key == "evaluate-street"
                    and a.created.timestamp() >= time.time() - (time.monotonic() - started) - 5]

    assert not asyncio.run(artifacts())  # nothing published over the last good table
