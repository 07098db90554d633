"""The review app's edges over HTTP in-process (Starlette's TestClient runs the real app and database): every bad
request is a 4xx with a short body that names no server path, bodies are capped, a study's results open only
with its owner token, study videos give nothing away by name or size, and the paper's table names its sources."""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.metric_display import markdown_text
from review import paper
from review import study as studies
from review.app import MAX_BODY, create_app
from review.catalog import Catalog
from review.db import Database
from review.settings import database_url
from review.stats import wilson_interval
from tests.review.evaluation_tree import make_evaluation

FORM = {"content-type": "application/x-www-form-urlencoded"}
EVIL = "run<img src=x onerror=alert(1)>"  # a legal folder name, and HTML


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edges") / "runs"
    make_evaluation(root, "street", ["run-a", "run-b", EVIL], ["c0", "c1"], frames=8)
    (root / "evaluations" / "street" / "run-a" / "passwd.mp4").symlink_to("/etc/passwd")
    return root


@pytest.fixture(scope="module")
def made(runs_root) -> studies.StudyLinks:
    async def work() -> studies.StudyLinks:
        db = Database(database_url(runs_root))
        try:  # no --attention-checks: the default applies
            return await studies.create_study(db, Catalog(runs_root), "street", ["run-a", "run-b"], raters=2)
        finally:
            await db.close()
    return asyncio.run(work())


@pytest.fixture(scope="module")
def client(runs_root, made):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PREFECT_API_URL", raising=False)  # no publishing here (read when the app is made)
        app = create_app(runs_root, database_url(runs_root))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _clean(response, runs_root: Path) -> None:
    """A refusal: 4xx, short, and no server path in it."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.text
    assert str(runs_root) not in body and "/etc/passwd" not in body and "resolves to" not in body
    assert len(body) < 4000


@pytest.mark.parametrize("path", [
    "/media/" + "a" * 5000 + ".mp4",  # File name too long
    "/media/evaluations/street/run-a/passwd.mp4",  # a symlink out of the runs root
    "/media/../../etc/passwd", "/d/" + "x" * 300, "/d/street/e/" + "y" * 4000,
    "/d/street/e/latest/compare?a=run-a",  # missing fields: no echo of the query
    "/d/street/e/latest/r/" + "z" * 3000, "/no/such/route",
])
def test_bad_gets_are_4xx_and_name_no_server_path(client, runs_root, path):
    _clean(client.get(path), runs_root)


def test_votes_and_videos_with_bad_ids_are_4xx(client, runs_root, made):
    study, token = made.study.id, made.tokens[0]
    for trial in ("9" * 30, "-1", "1e3", "0x10"):
        _clean(client.post(f"/s/{study}/r/{token}/vote", content=f"trial={trial}&side=left", headers=FORM), runs_root)
        _clean(client.get(f"/s/{study}/r/{token}/v/{trial}/left"), runs_root)
    huge_side = client.post(f"/s/{study}/r/{token}/vote", content="trial=1&side=" + "q" * 10000, headers=FORM)
    _clean(huge_side, runs_root)
    assert huge_side.status_code == 400 and huge_side.text.count("q") < 100  # the field is not echoed back


def test_request_bodies_are_capped(client, runs_root, made):
    url = f"/s/{made.study.id}/r/{made.tokens[0]}/vote"
    declared = client.post(url, content=b"trial=1&side=left&x=" + b"x" * (MAX_BODY + 1), headers=FORM)
    assert declared.status_code == 413
    chunked = client.post(url, content=iter([b"trial=1&side=left&x="] + [b"x" * 4096] * 8), headers=FORM)
    assert chunked.status_code == 413  # no Content-Length: counted while read
    _clean(declared, runs_root)


def test_results_and_run_names_only_with_the_owner_token(client, made):
    study = made.study.id
    for url in (f"/s/{study}", f"/api/s/{study}", f"/s/{study}/o/{made.tokens[0]}", f"/api/s/{study}/o/wrong",
                f"/s/no-such-study/o/{made.owner_token}"):
        response = client.get(url)
        assert response.status_code == 403 and "run-a" not in response.text, url
    for page in ("/", "/d/street"):
        assert study in client.get(page).text and "run-a" not in client.get(page).text
    rater = client.get(f"/s/{study}/r/{made.tokens[0]}")
    assert rater.status_code == 200 and "run-a" not in rater.text and "run-b" not in rater.text
    assert 'href="/"' not in rater.text and "<nav" not in rater.text  # a rater page links nowhere
    owner = client.get(f"/s/{study}/o/{made.owner_token}")
    assert owner.status_code == 200 and "run-a" in owner.text
    assert client.get(f"/api/s/{study}/o/{made.owner_token}").json()["votes"] == "0"


def test_attention_checks_by_default_look_like_any_trial(client, runs_root, made):
    assert made.trials == 2 and made.attention_checks >= 1
    assert made.attention_checks * 10 >= made.trials + made.attention_checks  # at least one per ten trials
    files = list((runs_root / "studies" / made.study.id).iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{16}\.mp4", f.name) for f in files)  # no clip, run or role in a name
    html = client.get(f"/s/{made.study.id}/r/{made.tokens[1]}").text
    assert "check" not in html.lower() and "attention" not in html.lower()
    lengths = set()
    async def trial_ids() -> list[int]:
        db = Database(database_url(runs_root))
        try:
            study, rater = await studies.rater_of(db, made.study.id, made.tokens[1])
            order, _ = await studies.rater_state(db, study, rater)
            return [s.trial.id for s in order]
        finally:
            await db.close()
    for trial in asyncio.run(trial_ids()):
        for side in ("left", "right"):
            response = client.get(f"/s/{made.study.id}/r/{made.tokens[1]}/v/{trial}/{side}")
            assert response.status_code == 200
            lengths.add(response.headers["content-length"])
    assert len(lengths) == 1  # Content-Length tells no check from a real trial


def test_the_paper_table_names_sources_flags_weights_and_escapes_names(runs_root, made):
    evaluation = Catalog(runs_root).evaluation("street", "latest")
    result = studies.StudyResult(made.study, votes_a=7, votes=10, raters=2, excluded_raters=0, attention_votes=2)
    table = paper.build(evaluation, [result])
    by_name = {m.name: m for m in table.methods}
    assert [m.name for m in table.methods][-1] == "real"
    vid2vid, ablation = by_name["vid2vid"], by_name["vid2vid without flow warping (run-b)"]
    low, high = wilson_interval(7, 10)
    cell = vid2vid.cells[f"pref:{ablation.name}"]
    assert cell.text == f"0.70 [{low:.2f}, {high:.2f}], 10 votes" and made.study.id in cell.source
    assert ablation.cells["pref:vid2vid"].text.startswith("0.30 ")
    assert vid2vid.cells["warp_error"].text == "0.01000" and "evaluation latest" in vid2vid.cells["warp_error"].source
    assert "rgb_imagenet.pt" in vid2vid.cells["fid_i3d"].flag and "https://" in vid2vid.cells["fid_i3d"].flag
    hidden = paper.build(evaluation, [result], visible=[])
    assert hidden.hidden_studies == 1 and all(not k.startswith("pref:") for k, _ in hidden.columns)
    text = paper.markdown(table, "http://review/d/street/table")
    assert "<img" not in text and "&lt;img" in text  # the run name is shown, never interpreted
    assert "FID I3D ↓" in text and "PSNR (dB) ↑" in text and "Sources:" in text
    assert markdown_text("a|b*c") == "a\\|b\\*c"


def test_the_paper_page_shows_preference_only_to_the_owner(runs_root, made):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PREFECT_API_URL", raising=False)
        app = create_app(runs_root, database_url(runs_root))
    with TestClient(app, follow_redirects=False) as fresh:
        before = fresh.get("/d/street/table")
        assert before.status_code == 200 and "hidden" in before.text and made.study.id not in before.text
        assert "&lt;img" in before.text and "<img src=x" not in before.text
        fresh.get(f"/s/{made.study.id}/o/{made.owner_token}")  # the owner link sets the cookie
        after = fresh.get("/d/street/table")
        assert made.study.id in after.text and "preferred over" in after.text


def test_study_artifacts_are_updated_in_place_without_deprecated_calls(prefect_server, runs_root, made):
    from prefect.client.orchestration import get_client

    from review.publish import Artifact, upsert

    key = "study-edges-test"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # Prefect's "creation outside of a run is deprecated"
        first = upsert(Artifact(key, "table", '[{"votes": "1"}]', "one"))
        second = upsert(Artifact(key, "table", '[{"votes": "2"}]', "two"))
    assert first == second
    with get_client(sync_client=True) as client:
        artifact = client.read_artifacts()
        versions = [a for a in artifact if a.key == key]
    assert len(versions) == 1 and "2" in str(versions[0].data) and versions[0].description == "two"


def test_artifact_links_land_on_the_latest_version_in_the_new_ui(prefect_server, runs_root, monkeypatch):
    from review.publish import Artifact, upsert

    ui = prefect_server.removesuffix("/api")
    monkeypatch.setenv("VID2VID_PREFECT_UI_URL", ui)
    artifact_id = upsert(Artifact("paper-linktest", "markdown", "# table", "x"))
    with TestClient(create_app(runs_root, database_url(runs_root)), follow_redirects=False) as c:
        response = c.get("/prefect/artifact/paper-linktest")
        assert response.status_code == 302 and response.headers["location"] == f"{ui}/v2/artifacts/artifact/{artifact_id}"
        missing = c.get("/prefect/artifact/no-such-key")
        assert missing.headers["location"] == f"{ui}/v2/artifacts/key/no-such-key"
        assert c.get("/prefect/artifact/" + "A" * 200).status_code == 404


def test_the_frame_grid_samples_the_whole_clip():
    from tasks.evaluate import sample_indices

    assert sample_indices(24) == [1, 12, 23] and sample_indices(2) == [1] and sample_indices(5) == [1, 2, 4]


def test_a_database_from_before_owner_tokens_keeps_its_studies_closed(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # the study table as it was before owner tokens
        old.execute("create table vid2vid_study (id varchar(64) primary key, dataset varchar(128), evaluation "
                    "varchar(128), run_a varchar(256), run_b varchar(256), variant_a varchar(256), variant_b "
                    "varchar(256), kind varchar(16), question varchar(256), created datetime)")
        old.execute("insert into vid2vid_study values ('old-1', 'street', 'latest', 'run-a', 'run-b', '', '', 'short', "
                    "'q', '2026-01-01 00:00:00')")

    async def work() -> list[studies.StudyResult]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.create()
            with pytest.raises(studies.Forbidden):
                await studies.owned_study(db, "old-1", "")  # no owner token: no web results, ever
            return await studies.results(db)
        finally:
            await db.close()

    assert [r.study.id for r in asyncio.run(work())] == ["old-1"]  # `vid2vid study results` still reads it
