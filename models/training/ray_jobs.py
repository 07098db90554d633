"""Training as a Ray Job on a cluster: submitted once per run, followed, and re-attached after a restart.

Why: the paper's models train for days. A Ray Train driver inside the Prefect flow process dies with the
Prefect worker (redeploy, restart, lost connection), and a re-run would start a second training. A Ray Job
runs its driver on the cluster instead; the flow only submits it and follows it. The job's submission id
is derived from the run folder's name, so a restarted flow finds the job of the same run and follows it
(Ray refuses a second job with the same submission id, which also settles two flows racing to submit).

The run folder lives on the storage shared by the flow and the cluster (``storage_path``): the job reads its
``job.json`` there and writes checkpoints, ``metrics.jsonl`` and ``summary.json`` there, which is how the
flow mirrors progress and picks up the results, also of a job that finished while no flow was following.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.training.job import TrainJob, TrainOutcome
from storage.atomic import atomic_write_bytes

JOB_FILE = "job.json"
SUMMARY_FILE = "summary.json"
ENTRYPOINT_MODULE = "models.training.ray_job_entry"
#: the Python the cluster runs the entrypoint with; the compose image's default ``python`` has the project
PYTHON_ENV = "VID2VID_RAY_JOB_PYTHON"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Failed|Interrupt)\b.*$")


class RayJobFailed(RuntimeError):
    """The cluster's training job ended without a result; the message carries the job's own error line."""


def is_job_endpoint(address: str | None) -> bool:
    """A Ray head's dashboard / job endpoint (``http://head:8265``) rather than a ``ray.init`` address."""
    return bool(address) and address.startswith(("http://", "https://"))


def submission_id(job: TrainJob) -> str:
    """One job per run: the id is a function of the run folder's name (already a checked, safe name)."""
    return f"vid2vid-train-{Path(job.run_dir).name}"


@dataclass(frozen=True)
class JobRef:
    submission_id: str
    attached: bool  # True: an earlier flow run submitted it; this one follows it


def _client(address: str):  # noqa: ANN202 - ray's client type, imported lazily (Ray takes seconds to import)
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def _job_exists(client, sid: str) -> bool:  # noqa: ANN001
    try:
        client.get_job_info(sid)
    except RuntimeError as exc:  # the SDK raises RuntimeError("... does not exist") for unknown ids
        if "does not exist" in str(exc) or "404" in str(exc):
            return False
        raise
    return True


def entrypoint(job_file: Path) -> str:
    """The job's command line (the job file names the model kind; one loop trains every kind)."""
    python = os.environ.get(PYTHON_ENV, "python")
    return f"{shlex.quote(python)} -m {ENTRYPOINT_MODULE} {shlex.quote(str(job_file))}"


def submit_or_attach(job: TrainJob, address: str, metadata: dict[str, str] | None = None) -> JobRef:
    """Submit the run's job unless one with its submission id exists; then follow that one instead.

    ``metadata`` is stored with the job (e.g. the Prefect flow run that submitted it, for cancellation).
    """
    client = _client(address)
    sid = submission_id(job)
    if _job_exists(client, sid):
        return JobRef(sid, attached=True)
    run = Path(job.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    # Inside the job the driver joins the cluster it runs on (RAY_ADDRESS is set there by Ray).
    cluster_job = job.model_copy(update={"ray_address": "auto"})
    job_file = run / JOB_FILE
    atomic_write_bytes(job_file, cluster_job.model_dump_json(indent=2).encode())
    try:
        client.submit_job(entrypoint=entrypoint(job_file), submission_id=sid,
                          metadata={"dataset": job.dataset, "run_dir": str(run), "kind": f"{job.model_kind}-train",
                                    **(metadata or {})})
    except RuntimeError as exc:
        if "already exists" in str(exc) and _job_exists(client, sid):  # another flow run won the race
            return JobRef(sid, attached=True)
        raise
    return JobRef(sid, attached=False)


def stop(address: str, sid: str, timeout: float = 60.0) -> str:
    """Stop the job and wait until Ray says it ended; returns its final status."""
    client = _client(address)
    client.stop_job(sid)
    deadline = time.monotonic() + timeout
    status = str(client.get_job_status(sid).value)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(client.get_job_status(sid).value)
    return status


def stop_jobs_with_metadata(address: str, metadata: dict[str, str]) -> list[str]:
    """Stop every unfinished job whose metadata holds all of ``metadata``; returns their submission ids."""
    client = _client(address)
    stopped = []
    for details in client.list_jobs():
        if str(details.status.value) in TERMINAL or not details.submission_id:
            continue
        if all((details.metadata or {}).get(k) == v for k, v in metadata.items()):
            stop(address, details.submission_id)
            stopped.append(details.submission_id)
    return stopped


def last_error_line(logs: str) -> str | None:
    """The job's own error line (``ValueError: ...``), the last one in its logs."""
    lines = [line.strip() for line in logs.splitlines() if _ERROR_LINE.match(line)]
    return lines[-1] if lines else None


def follow(address: str, ref: JobRef, *, on_log: Callable[[str], None], on_poll: Callable[[], None],
           should_cancel: Callable[[], bool], poll_seconds: float = 2.0, replay_lines: int = 20) -> str:
    """Stream the job's new log lines to ``on_log`` until it ends; returns the final status.

    A re-attached follower replays only the last ``replay_lines`` lines, not days of logs. ``on_poll`` is
    called once per poll (progress mirroring); ``should_cancel`` true stops the job (the Prefect run was
    cancelled), which is the only way this function ever stops it: a follower that dies leaves it running.
    """
    client = _client(address)
    seen = 0
    if ref.attached:
        existing = client.get_job_logs(ref.submission_id)
        lines = existing.splitlines()
        for line in lines[-replay_lines:]:
            on_log(line)
        seen = len(existing)
    while True:
        status = str(client.get_job_status(ref.submission_id).value)
        logs = client.get_job_logs(ref.submission_id)
        if len(logs) > seen:
            chunk = logs[seen:]
            complete, _, rest = chunk.rpartition("\n")  # hold a partial last line back until it ends
            if status in TERMINAL:
                complete, rest = chunk.rstrip("\n"), ""
            for line in complete.splitlines():
                on_log(line)
            seen = len(logs) - len(rest)
        on_poll()
        if status in TERMINAL:
            return status
        if should_cancel():
            return stop(address, ref.submission_id)
        time.sleep(poll_seconds)


def outcome_of(address: str, ref: JobRef, status: str, job: TrainJob) -> TrainOutcome:
    """The run's result as the job wrote it; a job that ended without one raises with its error line."""
    summary = Path(job.run_dir) / SUMMARY_FILE
    if summary.is_file():
        data = json.loads(summary.read_text())
        data.pop("job", None)
        return TrainOutcome.model_validate(data)
    if status == "STOPPED":
        raise RayJobFailed(f"Ray job {ref.submission_id} was stopped before it finished (run {job.run_dir})")
    logs = _client(address).get_job_logs(ref.submission_id)
    info = _client(address).get_job_info(ref.submission_id)
    reason = last_error_line(logs) or (info.message or "").strip().splitlines()[-1:] or ["no error line in its logs"]
    reason = reason if isinstance(reason, str) else reason[0]
    raise RayJobFailed(f"Ray job {ref.submission_id} {status.lower()}: {reason}")
