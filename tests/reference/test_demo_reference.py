"""`make demo`'s section on the shipped reference models: their table rows, goals and contact sheet, evaluated
from the shipped files (no training); with none shipped it says so and still runs."""

from __future__ import annotations

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


def test_the_shipped_street_model_joins_the_street_table_with_a_contact_sheet(tmp_path) -> None:
    [street] = [m for m in shipped_models() if m.name == "street"]
    data = StreetData.model_validate(street.card.data.recipe)
    layout = regenerate_heldout_street(tmp_path / "data", data)
    result = demo_reference_flow(str(layout.root), str(tmp_path / "runs"), str(tmp_path / "none.json"), 48)
    rows = {row["method"]: row for row in result["tables"]["street"]}
    assert rows["vid2vid (reference)"]["steps"] == str(street.card.steps)
    assert rows["vid2vid (reference)"]["run"] == "reference-street"
    assert abs(float(rows["vid2vid (reference)"]["psnr"].split()[0]) - street.card.heldout.metrics["psnr"]) <= 0.1
    assert "real frames" in rows and REAL not in rows
    [sheet] = result["sheets"]
    picture = cv2.imread(sheet)
    blocks = len([m for m in rows if m != "real frames"])
    width, height = data.size
    assert picture.shape[:2] == (2 * blocks * (14 + 2 * height), 2 * len(SHEET_FRAMES) * width)
    assert any(line.startswith("  method | fid_inception") or line.startswith("  method |") for line in result["lines"])


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
