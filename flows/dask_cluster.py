"""The Dask side of the preprocessing flow: the task runner (a named scheduler, else a local cluster whose
worker processes get glibc malloc settings that suit frame-sized buffers) and the API its workers report to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import dask
from distributed import LocalCluster
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner


# glibc malloc in the worker processes. Dask's nanny spawns workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand
# freed memory back to the OS); setting any malloc threshold also freezes glibc's mmap threshold at 128 KiB, so
# every frame, flow field and PNG buffer (0.1-1 MB) is mmap'd and unmapped again: 5x the page faults, 3x the
# system time, and the DIS flow stage 22 % slower per clip than in a plain process (1.85 s vs 1.52 s, 60 frames
# at 512x256). These are the values glibc's own dynamic thresholds settle at (DEFAULT_MMAP_THRESHOLD_MAX on
# 64-bit, and twice that): frame-sized buffers are reused from the heap; a task's memory stays bounded by one
# batch of frames, so nothing grows.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20)}


@contextmanager
def worker_malloc_environ() -> Iterator[None]:
    """Worker processes spawned inside this block get ``WORKER_MALLOC_ENV``.

    malloc reads these when a process starts, so they must be in the environment the nanny spawns from:
    the nanny copies ``distributed.nanny.pre-spawn-environ`` into ``os.environ``, and a value already in
    ``os.environ`` wins over the config, so both are set here and restored afterwards. Restarted workers
    keep them (the nanny stores its environment when it is created).

    Every variable Dask's nanny config copies into ``os.environ`` is restored too, not only ours: its defaults
    include ``OMP_NUM_THREADS=1`` (and MKL's, OpenBLAS's), and left in this process they made every thread
    started afterwards run torch on one core while the threads started before kept all of them (a rebuild's
    evaluation ran single-threaded after its preprocessing, and its videos differed from the same command's
    main-thread synthesis).
    """
    nanny = dask.config.get("distributed.nanny", {})
    touched = {*WORKER_MALLOC_ENV, *nanny.get("pre-spawn-environ", {}), *nanny.get("environ", {})}
    before = {key: os.environ.get(key) for key in touched}
    os.environ.update(WORKER_MALLOC_ENV)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}):
            yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def local_cluster(**kwargs: Any) -> LocalCluster:
    """The local Dask cluster the flow starts when no scheduler address is given (worker processes)."""
    with worker_malloc_environ():
        return LocalCluster(**kwargs)


def task_runner(dask_address: str | None, workers: int, threads_per_worker: int) -> DaskTaskRunner:
    """The named scheduler's (``dask_address``, as the flow's target resolved it: the parameter, else
    ``$VID2VID_DASK_ADDRESS``), else a local cluster's (None)."""
    address = dask_address
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": threads_per_worker,
                                          "processes": True, "dashboard_address": None,
                                          # no dashboard; its health/metrics server on a free loopback port, not
                                          # 8787 (two flows at once would print "Port 8787 is already in use")
                                          "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}})


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


@contextmanager
def workers_share_api(dask_address: str | None) -> Iterator[None]:
    """Make the Dask workers report to the API server this flow reports to.

    With the embedded (ephemeral) server, ``PREFECT_API_URL`` is unset and the flow process serves the API
    from a subprocess. A Dask worker process sees the same unset URL in the settings the task carries, so
    each worker booted an embedded server of its own (uvicorn + SQLite migrations, ~4.5 CPU-seconds each,
    all on the shared SQLite file) before its first task could start: two workers on a two-core machine
    spent the first ~10 s booting servers instead of computing. Pinning the URL in the settings context,
    which Prefect serializes with every task, points the workers at the flow's server instead. Only done
    for workers that can reach it (a local cluster, or a scheduler on this host): the embedded server
    listens on loopback. With a real server configured, nothing changes.
    """
    address = dask_address  # resolved by the flow's target (the parameter, else $VID2VID_DASK_ADDRESS)
    address_host = urlparse(address if "://" in (address or "") else f"tcp://{address or ''}").hostname or ""
    if PREFECT_API_URL.value() or (address and address_host not in _LOOPBACK):
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield
