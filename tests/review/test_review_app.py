"""The review app's rules, over HTTP in-process (Starlette's TestClient runs the real app and database):
paths never leave the runs root, videos answer range requests, links name one study, votes count once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from review import study as studies
from review.app import create_app
from review.catalog import Catalog
from review.db import Database
from review.settings import database_url
from review.stats import wilson_interval
from tests.review.evaluation_tree import make_evaluation


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_evaluation(root, "street", ["run-a", "run-b"], ["c0", "c1"], frames=8)
    (root.parent / "secret.mp4").write_bytes(b"not yours")
    return root


def _create(runs_root: Path, runs=("run-a", "run-b"), **kwargs) -> studies.StudyLinks:
    async def work() -> studies.StudyLinks:
        db = Database(database_url(runs_root))
        try:
            return await studies.create_study(db, Catalog(runs_root), "street", list(runs), **kwargs)
        finally:
            await db.close()
    return asyncio.run(work())


@pytest.fixture()
def client(runs_root, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # no artifact publishing in these unit tests
    with TestClient(create_app(runs_root, database_url(runs_root)), follow_redirects=False) as c:
        yield c


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)  # Wilson (1927) / Newcombe (1998) example values
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert abs((low + high) / 2 - 0.5) < 1e-12 and high - low < 0.2


def test_pages_from_dataset_to_clip_and_the_comparison(client):
    assert "street" in client.get("/").text
    evaluation = client.get("/d/street/e/latest")
    assert evaluation.status_code == 200 and "run-a" in evaluation.text and "0.0200" in evaluation.text
    assert "warp error (MSE, RGB 0–1) ↓" in evaluation.text  # labels with unit and better direction
    assert "/prefect/artifact/evaluate-street" in evaluation.text  # the way back to Prefect (its latest version)
    assert client.get("/d/street/e/latest/r/run-a").text.count("0.01000") == 1  # the table's rounding, not 0.0100
    clip = client.get("/d/street/e/latest/r/run-b/c/c1")
    assert clip.status_code == 200 and "/media/evaluations/street/run-b/c1.side_by_side.mp4" in clip.text
    compare = client.get("/d/street/e/latest/compare", params={"a": "run-a", "b": "run-b", "clip": "c0"})
    assert compare.status_code == 200
    assert "run-a/c0.mp4" in compare.text and "run-b/c0.mp4" in compare.text
    assert client.get("/d/street/e/latest/r/nope").status_code == 404


def test_videos_answer_range_requests(client, runs_root):
    url = "/media/evaluations/street/run-a/c0.mp4"
    size = (runs_root / "evaluations/street/run-a/c0.mp4").stat().st_size
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 10-19/{size}"
    assert part.content == (runs_root / "evaluations/street/run-a/c0.mp4").read_bytes()[10:20]
    assert client.get(url).headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("path", ["/media/../secret.mp4", "/media/%2E%2E/secret.mp4", "/media/..%2Fsecret.mp4",
                                  "/media/%2Fetc%2Fpasswd", "/media/evaluations/street/comparison.json",
                                  "/d/..%2F..%2F/e/latest", "/d/street/e/..%2F..%2F..", "/media/studies/x/c0.a.mp4",
                                  "/media/evaluations/..%2Fstudies/x/c0.a.mp4"])
def test_paths_from_urls_never_leave_the_runs_root(client, path):
    response = client.get(path)
    assert response.status_code in (404, 400) and b"not yours" not in response.content


def test_links_name_one_study_and_votes_count_once(client, runs_root):
    first = _create(runs_root, clips=2, raters=2, attention_checks=1)
    other = _create(runs_root, runs=("run-b", "run-a"), clips=1, kind="long")
    study_video = next((runs_root / "studies" / first.study.id).glob("*.mp4")).relative_to(runs_root)
    assert client.get(f"/media/evaluations/../{study_video}").status_code == 404  # never by file name
    study, token = first.study.id, first.tokens[0]
    assert client.get(f"/s/{study}/r/{token}").status_code == 200
    assert client.get(f"/s/{study}/r/{token[:-1]}x").status_code == 403  # tampered
    assert client.get(f"/s/{study}/r/{other.tokens[0]}").status_code == 403  # another study's rater
    assert client.get(f"/s/no-such-study/r/{token}").status_code == 404
    trial = int(client.get(f"/s/{study}/r/{token}").text.split('name="trial" value="')[1].split('"')[0])
    vote = client.post(f"/s/{study}/r/{token}/vote", content=f"trial={trial}&side=left",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert vote.status_code == 303
    again = client.post(f"/s/{study}/r/{token}/vote", content=f"trial={trial}&side=right",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert again.status_code == 303  # idempotent: accepted, nothing changes
    foreign = client.post(f"/s/{study}/r/{other.tokens[0]}/vote", content=f"trial={trial}&side=left",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert foreign.status_code == 403
    tally = client.get(f"/api/s/{study}/o/{first.owner_token}").json()
    seed, attention = _db(runs_root, "select r.seed, t.attention from vid2vid_study_rater r, vid2vid_study_trial t "
                                     "where r.token=? and t.id=?", token, trial)[0]
    left = studies.rater_order(seed, [SimpleNamespace(id=trial)])[0].left
    assert tally["votes"] == ("0" if attention else "1")  # attention checks are not preference votes
    assert tally["votes_a"] == (0 if attention or left == "b" else 1)  # the first vote (left) stands
    assert client.get(f"/api/s/{other.study.id}/o/{other.owner_token}").json()["votes"] == "0"
    # the video a rater gets is the trial's, by side, never by run name
    assert client.get(f"/s/{study}/r/{token}/v/{trial}/left").status_code == 200
    assert client.get(f"/s/{study}/r/{other.tokens[0]}/v/{trial}/left").status_code == 403


def _db(runs_root: Path, query: str, *args: object) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(runs_root / "review" / "review.db") as connection:
        return list(connection.execute(query, args))


def test_each_rater_has_an_own_order_and_sides():
    trials = [SimpleNamespace(id=i) for i in range(1, 21)]
    one, two = studies.rater_order(1, trials), studies.rater_order(2, trials)
    assert [s.trial.id for s in one] == [s.trial.id for s in studies.rater_order(1, trials)]  # stable per rater
    assert [s.trial.id for s in one] != [s.trial.id for s in two]
    assert {s.left for s in one} == {"a", "b"}


def test_the_command_line_refuses_a_bad_study_in_one_line(runs_root, vid2vid):
    done = vid2vid("study", "create", "--runs-root", str(runs_root), "--dataset", "street", "--runs", "run-a,ghost")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "ghost" in done.stderr
    before = set((runs_root / "studies").iterdir()) if (runs_root / "studies").is_dir() else set()
    done = vid2vid("study", "create", "--runs-root", str(runs_root), "--dataset", "street", "--runs", "run-a,run-b",
                   "--evaluation", "../..")
    assert done.returncode == 2 and "evaluation" in done.stderr
    assert (set((runs_root / "studies").iterdir()) if (runs_root / "studies").is_dir() else set()) == before


def test_a_study_needs_two_different_runs_that_exist(runs_root):
    with pytest.raises(ValueError, match="two different runs"):
        _create(runs_root, runs=("run-a", "run-a"))
    with pytest.raises(ValueError, match="no-such-run"):
        _create(runs_root, runs=("run-a", "no-such-run"))
    assert not os.environ.get("VID2VID_REVIEW_DB_URL")


def test_a_rater_who_fails_an_attention_check_is_not_counted(client, runs_root):
    links = _create(runs_root, clips=1, raters=2, attention_checks=1)
    study = links.study.id
    for token, honest in zip(links.tokens, (True, False)):
        for trial, attention in _db(runs_root, "select id, attention from vid2vid_study_trial where study_id=?", study):
            seed = _db(runs_root, "select seed from vid2vid_study_rater where token=?", token)[0][0]
            left = studies.rater_order(seed, [SimpleNamespace(id=trial)])[0].left
            real_side = "left" if left == "a" else "right"  # A is the run, or the real video in a check
            side = real_side if honest or not attention else ("right" if real_side == "left" else "left")
            client.post(f"/s/{study}/r/{token}/vote", content=f"trial={trial}&side={side}",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    tally = client.get(f"/api/s/{study}/o/{links.owner_token}").json()
    assert (tally["votes"], tally["votes_a"], tally["raters"]) == ("1", 1, "2")
    assert tally["excluded (failed attention check)"] == "1"


def test_a_study_that_cannot_be_prepared_leaves_nothing_behind(tmp_path):
    from storage.errors import BadInputError

    make_evaluation(tmp_path, "street", ["run-a", "run-b"], ["c0", "c1"], frames=8)
    (tmp_path / "evaluations/street/run-b/c1.mp4").write_bytes(b"\x00" * 64)  # a truncated video, after a good clip
    with pytest.raises(BadInputError, match="c1.mp4"):
        _create(tmp_path)
    assert not any((tmp_path / "studies").iterdir())
    assert not (tmp_path / "review" / "review.db").exists()  # the database is written only once all videos exist
