"""The preference study as raters meet it: headless Chromium (Debian's package, driven by Playwright) on the
review app served by `vid2vid review`, votes in its SQLite database, results in the Prefect artifact."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from review.stats import wilson_interval
from review.study import rater_order
from storage.loopback import free_port
from tests.conftest import VENV_BIN, cli_in_process
from tests.review.evaluation_tree import make_evaluation

CHROMIUM = Path("/usr/bin/chromium")


class ReviewApp:
    """`vid2vid review` as a user starts it, restartable on the same runs root and database."""

    def __init__(self, runs_root: Path, port: int) -> None:
        self.runs_root, self.port, self.url = runs_root, port, f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = open(self.runs_root.parent / "review.log", "ab")
        self.process = subprocess.Popen([str(VENV_BIN / "vid2vid"), "review", "--runs-root", str(self.runs_root),
                                         "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=os.environ.copy())
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.runs_root.parent / "review.log").read_text()[-2000:])
                time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture()
def study(tmp_path, prefect_server, monkeypatch):
    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install -y chromium)")
    runs_root = tmp_path / "runs"
    make_evaluation(runs_root, "street", ["run-a", "run-b"], ["c0", "c1"])
    app = ReviewApp(runs_root, free_port())
    monkeypatch.setenv("VID2VID_REVIEW_URL", app.url)  # the links `study create` prints point at this app
    created = cli_in_process("study", "create", "--runs-root", str(runs_root), "--dataset", "street", "--runs",
                             "run-a,run-b", "--clips", "2", "--kind", "short", "--raters", "2", "--attention-checks", "1")
    assert created.returncode == 0, created.stderr
    links = re.findall(r"rater link: (\S+)", created.stdout)
    assert len(links) == 2 and all(link.startswith(app.url + "/s/") for link in links)
    owner = re.search(r"owner link \(.*\): (\S+)", created.stdout).group(1)
    app.start()
    yield SimpleNamespace(app=app, links=links, runs_root=runs_root, study_id=links[0].split("/")[4], owner=owner)
    app.stop()


def _a_side(runs_root: Path, token: str, trial: int) -> tuple[str, bool]:
    """Which side shows run A (or, in an attention check, the real video) for this rater and trial."""
    with sqlite3.connect(runs_root / "review" / "review.db") as db:
        seed, attention = db.execute("select r.seed, t.attention from vid2vid_study_rater r, vid2vid_study_trial t "
                                     "where r.token=? and t.id=?", (token, trial)).fetchone()
    left = rater_order(seed, [SimpleNamespace(id=trial)])[0].left
    return ("left" if left == "a" else "right"), bool(attention)


def _rate(page, link: str, runs_root: Path, prefer_a: set[str]) -> int:
    """Open the link, watch both videos of every trial, and vote: A on the clips in ``prefer_a``, B on the
    others, the real video in attention checks. Returns how many trials were answered."""
    page.goto(link)
    token, answered = link.rsplit("/", 1)[1], 0
    while not page.locator("#done").count():
        for side in ("left", "right"):  # both decode and play
            page.wait_for_function(f"document.getElementById('{side}').readyState >= 2 && "
                                   f"document.getElementById('{side}').videoWidth > 0", timeout=20000)
        page.evaluate("Promise.all([document.getElementById('left').play(), document.getElementById('right').play()])")
        page.wait_for_function("document.getElementById('left').currentTime > 0.3 && "
                               "document.getElementById('right').currentTime > 0.3", timeout=20000)
        trial = int(page.locator("input[name=trial]").get_attribute("value"))
        a_side, attention = _a_side(runs_root, token, trial)
        choose_a = attention or trial_clip(runs_root, trial) in prefer_a
        b_side = "right" if a_side == "left" else "left"
        with page.expect_navigation():
            page.click(f"#choose-{a_side if choose_a else b_side}")
        answered += 1
    return answered


def trial_clip(runs_root: Path, trial: int) -> str:
    with sqlite3.connect(runs_root / "review" / "review.db") as db:
        return db.execute("select clip_id from vid2vid_study_trial where id=?", (trial,)).fetchone()[0]


def _results(page, url: str) -> dict[str, str]:
    page.goto(url)
    return {cell.get_attribute("data-key"): cell.inner_text() for cell in page.locator("#results td").all()}


def _artifact_rows(key: str) -> list[dict]:
    from prefect.client.orchestration import get_client

    async def read() -> list[dict]:
        async with get_client() as client:
            found = [a for a in await client.read_latest_artifacts() if a.key == key]
            return found[0].data if found else []

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        data = pool.submit(asyncio.run, read()).result()
    return __import__("json").loads(data) if isinstance(data, str) else data


def _wait_for_artifact(key: str, votes: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _artifact_rows(key)
        if (rows and rows[0]["votes"] == votes) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_raters_vote_through_a_study_and_the_results_survive_a_restart(study, vid2vid):
    from playwright.sync_api import sync_playwright

    results_url = study.owner  # results open only with the owner link
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page()
        page.goto(study.links[0])
        assert "Trial 1 of 3" in page.inner_text("body")  # 2 clips + 1 attention check
        assert "run-a" not in page.content() and "run-b" not in page.content()  # a rater never sees which is which

        assert _rate(page, study.links[0], study.runs_root, prefer_a={"c0", "c1"}) == 3
        first = _results(page, results_url)
        assert (first["votes"], first["raters"], first["A / B preference"]) == ("2", "1", "1.00 / 0.00")

        second_page = browser.new_page()
        second_page.goto(study.links[1])
        assert "Trial 1 of 3" in second_page.inner_text("body")  # the first rater's votes are not this rater's
        assert _rate(second_page, study.links[1], study.runs_root, prefer_a={"c0"}) == 3
        both = _results(page, results_url)
        low, high = wilson_interval(3, 4)
        assert (both["votes"], both["raters"], both["A / B preference"]) == ("4", "2", "0.75 / 0.25")
        assert both["95% CI of A"] == f"[{low:.2f}, {high:.2f}]"
        assert both["excluded (failed attention check)"] == "0"

        # a second vote on a trial changes nothing; a tampered or foreign link is refused
        trial = next(iter(_trial_ids(study.runs_root)))
        again = page.request.post(f"{study.links[0]}/vote", form={"trial": str(trial), "side": "left"})
        assert again.ok
        assert _results(page, results_url)["votes"] == "4"
        assert page.goto(study.links[0][:-2] + "xx").status == 403
        assert page.goto(study.links[0].replace(study.study_id, "no-such-study")).status == 404

        rows = _wait_for_artifact("study-street", "4")  # published by the app as the votes arrived
        assert rows and rows[0]["A / B preference"] == "0.75 / 0.25" and rows[0]["votes"] == "4"

        study.app.stop()  # the database outlives the app
        study.app.start()
        after = _results(page, results_url)
        assert after == both
        page.goto(study.links[0])
        assert page.locator("#done").count() == 1
        browser.close()

    printed = vid2vid("study", "results", "--runs-root", str(study.runs_root), "--dataset", "street")
    assert printed.returncode == 0, printed.stderr
    assert "0.75 / 0.25" in printed.stdout and "Prefect artifact: study-street" in printed.stdout
    assert "Prefect artifact: paper-street" in printed.stdout  # the paper's table, with this preference


def _trial_ids(runs_root: Path) -> list[int]:
    with sqlite3.connect(runs_root / "review" / "review.db") as db:
        return [r[0] for r in db.execute("select id from vid2vid_study_trial where attention = 0")]


def test_two_runs_of_a_clip_play_in_step_and_every_page_links_through(tmp_path):
    from playwright.sync_api import sync_playwright

    runs_root = tmp_path / "runs"
    make_evaluation(runs_root, "street", ["run-a", "run-b"], ["c0"], frames=48)
    app = ReviewApp(runs_root, free_port())
    app.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(app.url)
            for link in ("street", "latest", "run-b", "c0"):  # dataset → evaluation → run → clip
                page.click(f"a:text-is('{link}')")
            page.wait_for_function("document.getElementById('side-by-side').videoWidth == 192")  # 3 × 64 pixels
            page.click("a:text-is('run-a')")  # compare with the other run
            lead, follow = "document.getElementById('video-a')", "document.getElementById('video-b')"
            page.wait_for_function(f"{lead}.readyState >= 2 && {follow}.readyState >= 2")
            page.click("#play")
            page.wait_for_function(f"{lead}.currentTime > 1.0 && !{follow}.paused")
            page.click("#pause")
            page.wait_for_function(f"{follow}.paused")
            drift = page.evaluate(f"Math.abs({lead}.currentTime - {follow}.currentTime)")
            assert drift < 0.2
            page.evaluate(f"{lead}.currentTime = 2.5")  # a seek on the left moves the right
            page.wait_for_function(f"Math.abs({follow}.currentTime - 2.5) < 0.1")
            browser.close()
    finally:
        app.stop()
