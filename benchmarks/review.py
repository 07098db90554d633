"""Review app benchmark on loopback: votes recorded per second with concurrent raters (each rater opens their
page, votes, follows the redirect to the next trial — as a browser does), and the latency of a page with two
videos (the synchronised comparison: its HTML and both videos).

Bounded and self-stopping: every rater votes through every trial once, or the time limit ends the run.
Votes go to the default SQLite database (WAL) under a temporary runs root; the Prefect artifact is not
published here (no PREFECT_API_URL), so the figure is the vote path alone.

Run: .venv/bin/python benchmarks/review.py [--raters 20] [--clips 10] [--seconds 120] [--page-requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from review import commands  # noqa: E402
from storage.loopback import free_port  # noqa: E402
from tests.review.evaluation_tree import make_evaluation  # noqa: E402


def _start(runs_root: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "review", "--runs-root", str(runs_root),
                                "--port", str(port)], stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,
                               cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"review app did not start: {log.read_text()[-2000:]}")


async def _rater(client: httpx.AsyncClient, link: str, stop_at: float, latencies: list[float]) -> int:
    votes = 0
    page = await client.get(link)
    while time.monotonic() < stop_at:
        found = re.search(r'name="trial" value="(\d+)"', page.text)
        if not found:
            break  # every trial answered
        side = "left" if (votes + int(found.group(1))) % 2 else "right"
        started = time.perf_counter()
        page = await client.post(f"{link}/vote", data={"trial": found.group(1), "side": side}, follow_redirects=True)
        latencies.append(time.perf_counter() - started)
        page.raise_for_status()
        votes += 1
    return votes


async def _votes(links: list[str], seconds: float) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=len(links) * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        counts = await asyncio.gather(*(_rater(client, link, time.monotonic() + seconds, latencies) for link in links))
        return sum(counts), time.perf_counter() - started, latencies


async def _page_with_two_videos(url: str, base: str, requests: int) -> tuple[list[float], list[float]]:
    html_times, page_times = [], []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            page = await client.get(url)
            page.raise_for_status()
            html_times.append(time.perf_counter() - started)
            videos = re.findall(r'<video id="video-[ab]" src="([^"]+)"', page.text)
            assert len(videos) == 2, "the comparison page should hold two videos"
            answers = await asyncio.gather(*(client.get(base + v) for v in videos))
            assert all(a.status_code == 200 and a.content for a in answers)
            page_times.append(time.perf_counter() - started)
    return html_times, page_times


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--clips", type=int, default=10, help="trials per rater")
    parser.add_argument("--seconds", type=float, default=120, help="stop voting after this long")
    parser.add_argument("--page-requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_root = Path(tmp) / "runs"
        clips = [f"clip{k:02d}" for k in range(args.clips)]
        make_evaluation(runs_root, "bench", ["run-a", "run-b"], clips, frames=48, size=(256, 128))
        port = free_port()
        os.environ["VID2VID_REVIEW_URL"] = f"http://127.0.0.1:{port}"
        with contextlib.redirect_stdout(io.StringIO()):  # not the rater links
            links = commands.create_study(runs_root, "bench", ["run-a", "run-b"], None, "long",
                                          raters=args.raters).tokens
        base = f"http://127.0.0.1:{port}"
        study_id = next((runs_root / "studies").iterdir()).name
        rater_links = [f"{base}/s/{study_id}/r/{token}" for token in links]
        app = _start(runs_root, port, Path(tmp) / "review.log")
        try:
            votes, elapsed, latencies = asyncio.run(_votes(rater_links, args.seconds))
            with sqlite3.connect(runs_root / "review" / "review.db") as db:
                stored = db.execute("select count(*) from vid2vid_study_vote").fetchone()[0]
            video_bytes = (runs_root / "evaluations/bench/run-a/clip00.mp4").stat().st_size
            compare = f"{base}/d/bench/e/latest/compare?a=run-a&b=run-b&clip=clip00"
            html, page = asyncio.run(_page_with_two_videos(compare, base, args.page_requests))
        finally:
            app.terminate()
            app.wait(timeout=30)
    print(f"votes: {args.raters} concurrent raters x {args.clips} trials on loopback (SQLite, WAL)")
    print(f"  {votes} votes in {elapsed:.2f} s = {votes / elapsed:.1f} votes/s; {stored} stored "
          f"({'none lost' if stored == votes else 'MISMATCH'})")
    print(f"  vote + next page: p50 {_p(latencies, 50):.0f} ms, p95 {_p(latencies, 95):.0f} ms")
    print(f"page with two videos (comparison page, {video_bytes / 1024:.0f} KiB per video), {args.page_requests} loads:")
    print(f"  HTML: p50 {_p(html, 50):.1f} ms, p95 {_p(html, 95):.1f} ms; "
          f"HTML + both videos: p50 {_p(page, 50):.1f} ms, p95 {_p(page, 95):.1f} ms")


if __name__ == "__main__":
    main()
