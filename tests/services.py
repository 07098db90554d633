"""Service processes tests start themselves (Dask scheduler and workers, a Prefect worker): ports and stopping."""

from __future__ import annotations

from storage.loopback import free_port, stop_process_groups

__all__ = ["free_port", "stop_process_groups"]


