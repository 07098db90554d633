"""How long work tells whoever started it how far it got, without knowing who that is.

Flows and tasks call ``track(label, total, unit)`` and ``advance``/``update`` the handle it returns; by
default nothing happens (a deployment run has no terminal). The CLI installs a renderer for the length
of one command: a ``rich`` bar (counts, rate, ETA) on a terminal, plain periodic lines otherwise (CI,
logs). Only the process that runs the flow sees these calls: work in Dask or Ray worker processes is
reported by the flow as each piece comes back. No Prefect import here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

PLAIN_EVERY_ENV = "VID2VID_PROGRESS_EVERY"  # seconds between plain lines (default 10; 0: every update)


class Renderer(Protocol):
    def start(self, key: int, label: str, total: float | None, unit: str) -> None: ...
    def update(self, key: int, done: float, detail: str) -> None: ...
    def finish(self, key: int, summary: str) -> None: ...


class _Silent:
    def start(self, key: int, label: str, total: float | None, unit: str) -> None: ...
    def update(self, key: int, done: float, detail: str) -> None: ...
    def finish(self, key: int, summary: str) -> None: ...


_renderer: Renderer = _Silent()
_next_key = 0


class Tracker:
    """One piece of long work: ``done`` of ``total`` units, with an optional detail (losses, a clip)."""

    def __init__(self, label: str, total: float | None, unit: str) -> None:
        global _next_key
        _next_key += 1
        self.key, self.done, self.total, self.closed = _next_key, 0.0, total, False
        _renderer.start(self.key, label, total, unit)

    def update(self, done: float, detail: str = "") -> None:
        self.done = done
        _renderer.update(self.key, done, detail)

    def advance(self, amount: float = 1.0, detail: str = "") -> None:
        self.update(self.done + amount, detail)

    def close(self, summary: str = "") -> None:
        if not self.closed:
            self.closed = True
            _renderer.finish(self.key, summary)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(label: str, total: float | None, unit: str = "items") -> Tracker:
    return Tracker(label, total, unit)


def collect(futures: Sequence[Any], label: str, unit: str = "clips") -> list[Any]:
    """Every future's result, in order, counting each one done (a failed one raises, as ``result()`` does)."""
    results = []
    with track(label, len(futures), unit) as tracker:
        for future in futures:
            results.append(future.result())
            tracker.advance()
    return results


@contextmanager
def rendering(renderer: Renderer) -> Iterator[Renderer]:
    """Send every tracker's updates to ``renderer`` while the block runs."""
    global _renderer
    before, _renderer = _renderer, renderer
    try:
        yield renderer
    finally:
        _renderer = before


def _eta(done: float, total: float | None, seconds: float) -> str:
    if not total or done <= 0 or done >= total:
        return ""
    return f", ETA {int((total - done) * seconds / done)} s"


class PlainLines:
    """A line per tracker at most every ``every`` seconds, plus its first and last: for logs and CI."""

    def __init__(self, stream: TextIO | None = None, every: float | None = None) -> None:
        self.stream = stream or sys.stdout
        self.every = float(os.environ.get(PLAIN_EVERY_ENV, "10")) if every is None else every
        self.state: dict[int, dict] = {}

    def _line(self, text: str) -> None:
        # written to the stream itself: print() inside a flow run is a log record (log_prints), which a
        # deployment or test may not show on the console
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, key: int, label: str, total: float | None, unit: str) -> None:
        self.state[key] = {"label": label, "total": total, "unit": unit, "started": time.monotonic(), "printed": 0.0,
                           "done": 0.0, "detail": ""}
        self._line(f"[{label}] started: {'?' if total is None else f'{total:g}'} {unit}")

    def _describe(self, s: dict) -> str:
        seconds = max(time.monotonic() - s["started"], 1e-9)
        count = f"{s['done']:g}/{s['total']:g}" if s["total"] else f"{s['done']:g}"
        percent = f" ({100 * s['done'] / s['total']:.0f}%)" if s["total"] else ""
        detail = f"; {s['detail']}" if s["detail"] else ""
        return (f"[{s['label']}] {count} {s['unit']}{percent}, {s['done'] / seconds:.2f} {s['unit']}/s"
                f"{_eta(s['done'], s['total'], seconds)}{detail}")

    def update(self, key: int, done: float, detail: str) -> None:
        s = self.state[key]
        s["done"], s["detail"] = done, detail or s["detail"]
        now = time.monotonic()
        if now - s["printed"] >= self.every:
            s["printed"] = now
            self._line(self._describe(s))

    def finish(self, key: int, summary: str) -> None:
        s = self.state.pop(key)
        took = time.monotonic() - s["started"]
        self._line(f"[{s['label']}] done: {s['done']:g} {s['unit']} in {took:.1f} s" + (f"; {summary}" if summary else ""))


class RichBars:
    """A live ``rich`` bar per tracker: description, bar, count, rate, elapsed and ETA."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[detail]}"), transient=False)
        self.tasks: dict[int, int] = {}
        self.started: dict[int, float] = {}

    def start(self, key: int, label: str, total: float | None, unit: str) -> None:
        if not self.tasks:
            self.progress.start()
        self.tasks[key] = self.progress.add_task(label, total=total, unit=unit, rate="", detail="")
        self.started[key] = time.monotonic()

    def update(self, key: int, done: float, detail: str) -> None:
        seconds = max(time.monotonic() - self.started[key], 1e-9)
        task = self.tasks[key]
        unit = self.progress.tasks[task].fields["unit"]
        self.progress.update(task, completed=done, rate=f"{done / seconds:.2f} {unit}/s",
                             **({"detail": detail} if detail else {}))

    def finish(self, key: int, summary: str) -> None:
        task = self.tasks.pop(key)
        if self.progress.tasks[task].total is None:
            self.progress.update(task, total=self.progress.tasks[task].completed)
        if summary:
            self.progress.update(task, detail=summary)
        if not self.tasks:
            self.progress.stop()


def for_terminal(stream: TextIO | None = None) -> Renderer:
    """Bars when ``stream`` (stdout) is a terminal, plain periodic lines otherwise."""
    stream = stream or sys.stdout
    return RichBars() if stream.isatty() else PlainLines(stream)
