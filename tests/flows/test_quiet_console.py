"""A quiet console (issue 24): a tiny rebuild through the CLI prints no WARNING or ERROR line but our own
messages — no DDP unused-parameter note, no Ray preemption-watcher error, no refused Prefect event, no
deprecation warning from our calls. The real CLI, real Dask, Ray and Prefect server."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli

#: a console line that reports a problem: a log record at WARNING/ERROR, a Python warning, Ray's error lines
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Warning:|\(raylet\)|\bE\d{4} ")
#: ours: our flows' and tasks' run loggers (Prefect prefixes them with the run), and the CLI's own lines
OURS = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| (WARNING|ERROR)\s*\| (Flow|Task) run '[^']+' - |^(warning|error): ")


def foreign_problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if PROBLEM.search(line) and not OURS.search(line)]


def test_the_filter_tells_ours_from_theirs():
    assert foreign_problems("09:00:00.123 | WARNING | Flow run 'ingest d' - quarantined x: too short\nok") == []
    assert foreign_problems("warning: could not check for crashed runs: x") == []
    noisy = ["09:00:01.000 | WARNING | prefect.server.events.messaging - Refusing to publish event of size 1627616",
             "/x/torch/jit/_serialization.py:182: FutureWarning: `torch.jit.load` is deprecated.",
             "(raylet) E1203 09:00:00 Actor with class name: 'PreemptionWatcher' has constructor arguments in the "
             "object store", "[W1203 reducer.cpp:1400] Warning: find_unused_parameters=True was specified ..."]
    assert foreign_problems("\n".join(noisy)) == noisy


@pytest.mark.timeout(1500)
@pytest.mark.usefixtures("prefect_server")
def test_a_tiny_rebuild_prints_no_warning_or_error_but_ours(tmp_path):
    done = run_cli("--data-root", str(tmp_path / "data"), "rebuild", "--dataset", "quiet", "--config", "tiny",
                   "--max-steps", "2", "--metrics", "warp", "--workers", "1", "--train-workers", "2",
                   "--runs-root", str(tmp_path / "runs"), timeout=1400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert foreign_problems(done.stdout + "\n" + done.stderr) == []
