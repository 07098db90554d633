"""Drives the mediapipe worker process (mediapipe_worker.py) from the main venv.

The side venv is found at ``$VID2VID_MEDIAPIPE_PYTHON`` or ``<repo>/.venv-mediapipe/bin/python``; when it
is missing the stage fails with a message saying how to create it (``make mediapipe-venv``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MEDIAPIPE_PYTHON_ENV = "VID2VID_MEDIAPIPE_PYTHON"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("mediapipe_worker.py")


class MediapipeUnavailableError(RuntimeError):
    """The mediapipe side venv is missing or broken: a setup problem, not bad input."""


def mediapipe_python() -> Path:
    env = os.environ.get(MEDIAPIPE_PYTHON_ENV)
    path = Path(env) if env else REPO_ROOT / ".venv-mediapipe" / "bin" / "python"
    if not path.exists():
        raise MediapipeUnavailableError(
            f"the mediapipe side venv is missing: expected {path}. Create it with `make mediapipe-venv` "
            f"(mediapipe==0.10.14, protobuf<5; see scripts/mediapipe-requirements.txt) or point "
            f"${MEDIAPIPE_PYTHON_ENV} at its python.")
    return path


class MediapipeWorker:
    """One worker process per clip (it keeps tracking state across the clip's frames). Use as a context manager."""

    def __init__(self, task: str, **config: Any) -> None:
        self.task, self.config = task, config
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "MediapipeWorker":
        # stderr to a file: an unread pipe could fill up and stall the worker on a long clip
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([str(mediapipe_python()), str(WORKER)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, env=_worker_env())
        self._write({"task": self.task, **self.config})
        self.info = self._read()
        if not self.info.get("ready"):
            raise MediapipeUnavailableError(f"mediapipe worker did not start: {self.info}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._write_to(proc, {"quit": True})
                proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
            self._log.close()

    def process(self, frame: np.ndarray) -> tuple[dict[str, Any], np.ndarray | None]:
        """Landmarks (normalized to the frame) for one RGB frame, plus the person mask for pose."""
        frame = np.ascontiguousarray(frame, np.uint8)
        h, w = frame.shape[:2]
        self._write({"h": h, "w": w}, frame.tobytes())
        reply = self._read()
        mask = None
        if reply.get("mask_bytes"):
            mask = np.frombuffer(self._read_exact(int(reply["mask_bytes"])), np.uint8).reshape(h, w).copy()
        return reply, mask

    # --- plumbing -----------------------------------------------------------------------------------
    def _write(self, message: dict[str, Any], payload: bytes = b"") -> None:
        assert self._proc is not None
        self._write_to(self._proc, message, payload)

    def _write_to(self, proc: subprocess.Popen[bytes], message: dict[str, Any], payload: bytes = b"") -> None:
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n" + payload)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            raise MediapipeUnavailableError(f"mediapipe worker died: {self._stderr()}") from None

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        line = self._proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise MediapipeUnavailableError(f"mediapipe worker exited: {self._stderr()}")
        reply = json.loads(line)
        if "error" in reply:
            raise MediapipeUnavailableError(f"mediapipe worker error: {reply['error']}")
        return reply

    def _read_exact(self, n: int) -> bytes:
        assert self._proc is not None
        data = self._proc.stdout.read(n)  # type: ignore[union-attr]
        if len(data) != n:
            raise MediapipeUnavailableError(f"mediapipe worker sent {len(data)} of {n} bytes: {self._stderr()}")
        return data

    def _stderr(self) -> str:
        proc = self._proc
        if proc is None:
            return ""
        try:
            proc.kill()
            proc.wait(timeout=10)
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-2000:]
        except Exception:  # noqa: BLE001 - best effort diagnostics
            return ""


class MediapipeBackend:
    """A backend that runs one mediapipe task in a side-venv worker for as long as it is entered.

    Subclasses set ``task`` ("face" or "pose") and ``self.config`` (the worker's options)."""

    task: str
    config: dict[str, Any]
    _worker: MediapipeWorker | None = None

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        self._worker = MediapipeWorker(self.task, **self.config).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._worker is not None:
            self._worker.__exit__(*exc)
            self._worker = None

    @property
    def worker(self) -> MediapipeWorker:
        if self._worker is None:
            raise RuntimeError(f"use {type(self).__name__} as a context manager (`with backend: ...`)")
        return self._worker


def _worker_env() -> dict[str, str]:
    """The side venv must not see this venv's packages (PYTHONPATH from a test runner, say)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("GLOG_minloglevel", "2")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
