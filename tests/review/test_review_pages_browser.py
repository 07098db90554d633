"""A reviewer's pages in headless Chromium (Debian's, driven by Playwright): the paper's table at 1280 px with its
sources, preference that appears only for the study's owner, a link that lands on the artifact's latest version
in Prefect's new UI, the compare page headed by method with the real video, a rater page that links nowhere.
One review app (`vid2vid review`), one study (`vid2vid study create`) and one browser for the whole module."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from storage.loopback import free_port
from tests.conftest import cli_in_process
from tests.review.evaluation_tree import make_evaluation
from tests.review.test_review_browser import CHROMIUM, ReviewApp, _rate


@pytest.fixture(scope="module")
def site(tmp_path_factory, prefect_server):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install -y chromium)")
    runs_root = tmp_path_factory.mktemp("pages") / "runs"
    make_evaluation(runs_root, "pagestreet", ["run-a", "run-b"], ["c0", "c1"])
    patch = pytest.MonkeyPatch()
    app = ReviewApp(runs_root, free_port())
    ui = prefect_server.removesuffix("/api")
    patch.setenv("VID2VID_REVIEW_URL", app.url)
    patch.setenv("VID2VID_PREFECT_UI_URL", ui)
    created = cli_in_process("study", "create", "--runs-root", str(runs_root), "--dataset", "pagestreet", "--runs",
                             "run-a,run-b")
    assert created.returncode == 0, created.stderr
    assert "1 attention check(s)" in created.stdout  # on by default
    rater = re.search(r"rater link: (\S+)", created.stdout).group(1)
    owner = re.search(r"owner link \(.*\): (\S+)", created.stdout).group(1)
    app.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield SimpleNamespace(app=app, page=page, rater=rater, owner=owner, runs_root=runs_root, ui=ui,
                              study_id=rater.split("/")[4])
        browser.close()
    app.stop()
    patch.undo()


def test_a_rater_page_links_nowhere_and_results_need_the_owner_link(site):
    page = site.page
    page.goto(site.rater)
    assert page.locator("a").count() == 0  # no way home, no Prefect link
    assert "run-a" not in page.content() and "run-b" not in page.content()
    for url in (f"/s/{site.study_id}", f"/api/s/{site.study_id}"):
        response = page.goto(site.app.url + url)
        assert response.status == 403 and "run-a" not in page.content()


def test_the_paper_table_fits_names_sources_and_shows_preference_to_the_owner(site):
    page = site.page
    page.goto(f"{site.app.url}/d/pagestreet/table")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no table cut off
    headers = page.locator("#paper th[data-key]").all_inner_texts()
    assert headers[:6] == ["FID I3D ↓", "FID ResNeXt-101 ↓", "frame FID (Inception-v3) ↓", "warp error (MSE, RGB 0–1) ↓",
                           "PSNR (dB) ↑", "SSIM (0–1) ↑"]
    assert page.locator("#hidden").count() == 1  # a study exists, its result is not this browser's to see
    warp = page.locator("tr[data-method='vid2vid'] td[data-key='warp_error']").inner_text()
    assert warp.startswith("0.01000") and "[" in warp  # the table's rounding, and a source marker
    sources = page.locator("#sources li").all_inner_texts()
    assert any("evaluation latest" in s and "run-a" in s for s in sources)
    assert any("rgb_imagenet.pt" in f and "https://" in f for f in page.locator("#flags li").all_inner_texts())

    assert _rate(page, site.rater, site.runs_root, prefer_a={"c0", "c1"}) == 3  # 2 trials + 1 attention check
    page.goto(site.owner)
    assert page.locator("#results td[data-key='votes']").inner_text() == "2"
    page.goto(f"{site.app.url}/d/pagestreet/table")
    cell = page.locator("tr[data-method='vid2vid'] td[data-key='pref:vid2vid without flow warping']").inner_text()
    assert cell.startswith("1.00 [") and "2 votes" in cell
    assert any(site.study_id in s for s in page.locator("#sources li").all_inner_texts())


def test_the_artifact_link_lands_on_the_latest_version_in_the_new_ui(site):
    page = site.page
    page.goto(f"{site.app.url}/d/pagestreet")
    # The app publishes the paper's table a few seconds after the votes; until then the key's latest version may
    # be one another test published for the key; this module uses its own dataset name so that none does.
    deadline = time.monotonic() + 90
    while True:
        with page.expect_navigation():
            page.click("a:text-is(\"paper's table artifact\")")
        body = ""
        if "/v2/artifacts/artifact/" in page.url:
            page.wait_for_selector("text=Sources", timeout=60000)  # the table itself, not a list of versions
            body = page.inner_text("body")
        if "human preference ↑" in body or time.monotonic() > deadline:
            break
        page.goto(f"{site.app.url}/d/pagestreet")
        time.sleep(2)
    assert page.url.startswith(f"{site.ui}/v2/artifacts/artifact/")
    assert "human preference ↑" in body and "vs vid2vid without flow warping: 1.00 [" in body
    fits = "(t => t.scrollWidth <= t.parentElement.clientWidth)(document.querySelector('table'))"
    page.wait_for_function(fits, timeout=15000)  # wraps, not cut, once the UI has laid the table out (a full run
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # once read it a moment before)


def test_two_methods_and_the_real_video_play_in_step(site):
    page = site.page
    page.goto(f"{site.app.url}/d/pagestreet/e/latest/compare?a=run-a&b=run-b&clip=c0")
    assert page.locator("h2.method").all_inner_texts() == ["vid2vid", "vid2vid without flow warping", "real"]
    real = "document.getElementById('video-real')"
    page.wait_for_function(f"{real}.readyState >= 2 && {real}.videoWidth == 192")  # the side-by-side's real third
    shown = page.evaluate(f"[{real}.getBoundingClientRect().width, {real}.parentElement.getBoundingClientRect().width]")
    assert abs(shown[0] - 3 * shown[1]) < 2  # cropped to its right third
    page.click("#play")
    page.wait_for_function(f"document.getElementById('video-a').currentTime > 0.5 && !{real}.paused")
    page.click("#pause")
    page.wait_for_function(f"{real}.paused")
    assert page.evaluate(f"Math.abs(document.getElementById('video-a').currentTime - {real}.currentTime)") < 0.2
