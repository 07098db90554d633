"""The one SQL database of a runs root: study votes (review/) and the model registry (storage/registry.py).

SQLite at ``<runs_root>/review/review.db`` by default, any SQLAlchemy async URL in ``$VID2VID_REVIEW_DB_URL``
(``postgresql+asyncpg://…`` in the cluster form). The async drivers are the ones Prefect installs
(aiosqlite, asyncpg); synchronous callers (flows, the CLI) go through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DB_URL_ENV = "VID2VID_REVIEW_DB_URL"
T = TypeVar("T")


def database_url(runs_root: str | os.PathLike[str], override: str | None = None) -> str:
    """argument, then ``$VID2VID_REVIEW_DB_URL``, then SQLite at ``<runs_root>/review/review.db``."""
    url = override or os.environ.get(DB_URL_ENV)
    if url:
        return url
    path = Path(runs_root).resolve() / "review" / "review.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def make_engine(url: str, *, immediate: bool = False) -> AsyncEngine:
    """An async engine; on SQLite with WAL (readers never block the writer), a 10 s busy wait, foreign keys
    and, with ``immediate``, ``BEGIN IMMEDIATE`` transactions: a read-then-write transaction takes the write
    lock first, so two writers queue instead of failing on a lock upgrade."""
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # noqa: ANN001 - DBAPI connection
            if immediate:
                connection.isolation_level = None  # SQLAlchemy, not the driver, says when a transaction begins
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        if immediate:
            @event.listens_for(engine.sync_engine, "begin")
            def _begin_immediate(connection) -> None:  # noqa: ANN001 - SQLAlchemy connection
                connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def run_sync(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, on a thread of its own (a caller may already be
    inside an event loop, e.g. a Prefect task)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()  # type: ignore[arg-type]
