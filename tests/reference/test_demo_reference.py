"""`make demo`'s section on the shipped reference models: their table rows, goals and contact sheet, evaluated
from the shipped files (no training); with none shipped it says so and still runs."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from flows.demo_reference import REAL, SHEET_FRAMES, demo_reference_flow
from models.metrics.reference_goals import face_goals, number, street_goals
from models.reference.card import shipped_models
from models.reference.recipe import StreetData
from tests.reference.test_shipped_models import regenerate_heldout_street

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_without_shipped_models_the_demo_says_so_and_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VID2VID_REFERENCE_DIR", str(tmp_path / "empty"))
    result = demo_reference_flow(str(tmp_path / "data"), str(tmp_path / "runs"), str(tmp_path / "none.json"), 48)
    assert any("shipped reference models: none in" in line and "make reference-models" in line
               for line in result["lines"])
    assert result["goals"] == [] and result["sheets"] == [] and "face" not in result["tables"]


def test_the_shipped_models_join_the_street_and_face_tables_with_contact_sheets(tmp_path) -> None:
    shipped = {m.name: m for m in shipped_models()}
    street = shipped["street"]
    data = StreetData.model_validate(street.card.data.recipe)
    layout = regenerate_heldout_street(tmp_path / "data", data)
    result = demo_reference_flow(str(layout.root), str(tmp_path / "runs"), str(tmp_path / "none.json"), 48)
    rows = {row["method"]: row for row in result["tables"]["street"]}
    assert rows["vid2vid (reference)"]["steps"] == str(street.card.steps)
    assert rows["vid2vid (reference)"]["run"] == "reference-street"
    assert abs(float(rows["vid2vid (reference)"]["psnr"].split()[0]) - street.card.heldout.metrics["psnr"]) <= 0.1
    assert "real frames" in rows and REAL not in rows
    sheets = {Path(s).stem: s for s in result["sheets"]}
    picture = cv2.imread(sheets["contact_sheet_street"])
    blocks = len([m for m in rows if m != "real frames"])
    width, height = data.size
    assert picture.shape[:2] == (2 * blocks * (14 + 2 * height), 2 * len(SHEET_FRAMES) * width)
    assert any(line.startswith("  method | fid_inception") or line.startswith("  method |") for line in result["lines"])
    if not {"face", "face_frame"} <= set(shipped):
        return
    # the face pair: built from the real clip through the pipeline, scored as its cards say, with its own sheet
    face = {row["method"]: row for row in result["tables"]["face"]}
    [vid2vid] = [m for m in face if m.startswith("vid2vid") and m.endswith("(reference)")]  # no fg/bg prior
    assert {"frame-by-frame (reference)", "real frames"} <= set(face)
    for name, method in (("face", vid2vid), ("face_frame", "frame-by-frame (reference)")):
        card = shipped[name].card
        assert face[method]["steps"] == str(card.steps)
        assert abs(float(face[method]["psnr"].split()[0]) - card.heldout.metrics["psnr"]) <= 0.1, (name, face[method])
    face_sheet = cv2.imread(sheets["contact_sheet_face"])
    assert face_sheet is not None and face_sheet.shape[1] == 2 * len(SHEET_FRAMES) * 128
    assert any(g.startswith(("[MET]", "[MISSED]")) and "face reference vid2vid PSNR" in g for g in result["goals"]), result["goals"]


def test_the_reference_goals_are_met_or_missed_with_their_figures() -> None:
    real = {"warp_error": 0.002}
    met = street_goals({"psnr": 21.0, "fid_inception": "100.0 (unverified weights)", "warp_error": 0.0025},
                       {"fid_inception": 150.0}, real, "sheet.png")
    assert [g.met for g in met] == [True, True, True, None] and "1.25x" in met[2].measured
    missed = street_goals({"psnr": 17.3, "fid_inception": 200.0, "warp_error": 0.004}, {"fid_inception": 150.0},
                          real, "sheet.png")
    assert [g.met for g in missed] == [False, False, False, None]
    assert missed[0].line() == "[MISSED] street reference vid2vid PSNR >= 20 dB: 17.30 dB" and "sheet.png" in missed[3].line()
    unknown = street_goals({"psnr": "not computed: x"}, {}, {}, "s")
    assert [g.met for g in unknown] == [None] * 4
    face = face_goals({"psnr": 25.0, "warp_error": 0.01}, {"psnr": 24.0, "warp_error": 0.02}, "s")
    assert [g.met for g in face] == [True, True, None]
    assert number("12.5 (unverified weights)") == 12.5 and number("not computed: weights missing") is None


def test_the_demo_time_goal_is_the_whole_demos_and_a_rerun_does_not_claim_it() -> None:
    from models.metrics.goals import DEMO_SECONDS_GOAL, demo_time_goal

    assert demo_time_goal(DEMO_SECONDS_GOAL - 1, reused=False).line().startswith("[MET]")
    assert demo_time_goal(DEMO_SECONDS_GOAL + 60, reused=False).line() == f"[MISSED] demo <= 6 min on this machine: {DEMO_SECONDS_GOAL + 60:.0f} s"
    rerun = demo_time_goal(42.0, reused=True)
    assert rerun.met is None and "reused the trained models" in rerun.line() and rerun.line().startswith("[n/a]")
