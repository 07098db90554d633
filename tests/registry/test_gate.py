"""The quality gate's rules: tolerances against the champion, minimums for a first model, finiteness, and the
gate YAML refused when it is not exactly what the schema declares."""

from __future__ import annotations

import math

import pytest

from models.gate import GateConfig, judge, load_gate, number


def test_the_default_gate_is_the_declared_tolerances():
    gate = load_gate("default")
    assert gate.rules["psnr"].max_drop == 0.5 and gate.rules["warp_error"].max_ratio == 1.2
    assert gate.rules["fid_inception"].max_ratio == 1.1
    assert set(gate.metrics) == {"psnr", "warp_error", "fid_inception"}


@pytest.mark.parametrize("challenger, passed, why", [
    ({"psnr": 15.6, "warp_error": 0.011, "fid_inception": 109.0}, True, ""),  # a little worse, within every tolerance
    ({"psnr": 15.4, "warp_error": 0.010, "fid_inception": 100.0}, False, "psnr"),  # 0.6 dB lower
    ({"psnr": 16.0, "warp_error": 0.0121, "fid_inception": 100.0}, False, "warp_error"),  # 1.21x
    ({"psnr": 16.0, "warp_error": 0.010, "fid_inception": 111.0}, False, "fid_inception"),  # 1.11x
    ({"psnr": 16.0, "warp_error": 0.010, "fid_inception": "n/a — weights missing"}, False, "not a finite number"),
    ({"psnr": math.nan, "warp_error": 0.010, "fid_inception": 100.0}, False, "not a finite number"),
    ({"psnr": 16.0, "warp_error": 0.010, "fid_inception": 100.0, "ssim": math.inf}, False, "ssim"),  # any value
    ({"psnr": 16.0, "warp_error": 0.010, "fid_inception": "104.5 (unverified weights)"}, True, ""),
])
def test_a_challenger_against_the_champion(challenger, passed, why):
    champion = {"psnr": 16.0, "warp_error": 0.010, "fid_inception": 100.0}
    verdict = judge(load_gate("default"), challenger, champion)
    assert verdict.passed is passed, verdict.reasons
    assert passed or any(why in reason for reason in verdict.reasons)


def test_a_first_model_is_judged_by_the_minimums_and_a_champion_without_a_number_fails_the_gate():
    gate = load_gate("default")
    assert judge(gate, {"psnr": 12.0, "warp_error": 0.02}, None).passed
    low = judge(gate, {"psnr": 9.0, "warp_error": 0.02}, None)
    assert not low.passed and low.reasons == ["psnr: 9 needs ≥ 10"]
    broken = judge(gate, {"psnr": 16.0, "warp_error": 0.01, "fid_inception": 1.0}, {"psnr": "n/a", "warp_error": 0.01,
                                                                                       "fid_inception": 1.0})
    assert not broken.passed and "champion's psnr is not a finite number" in broken.reasons[0]
    assert number("12.5 (unverified weights)") == 12.5 and number("not computed: weights missing") is None


@pytest.mark.parametrize("data, message", [
    ({"name": "g", "rules": {"psnr": {"max_drop": 0.5}}, "extra": 1}, "Extra inputs are not permitted"),
    ({"name": "g", "rules": {"psnr": {"max_dorp": 0.5}}}, "Extra inputs are not permitted"),
    ({"name": "g", "rules": {"psnr": {"max_drop": "0.5"}}}, "valid number"),  # strict: no strings for numbers
    ({"name": "g", "rules": {"psnr": {"max_drop": 0.5, "max_ratio": 1.1}}}, "exactly one"),
    ({"name": "g", "rules": {"psnr": {"max_drop": math.inf}}}, "finite"),
    ({"name": "g", "rules": {"fid-bogus": {"max_ratio": 1.1}}}, "unknown metrics"),
    ({"name": "g", "rules": {"psnr": {"max_drop": 0.5}, "psnr ": {"max_drop": 1.0}}}, "named twice"),
    ({"name": "g", "rules": {}}, "at least one rule"),
    ({"name": "g", "rules": {"psnr": {"max_drop": 0.5}}, "minimums": {"psnr": {}}}, "at_least and/or at_most"),
])
def test_a_gate_that_is_not_exactly_the_schema_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        GateConfig.model_validate(data)


def test_a_gate_file_that_does_not_exist_or_is_wrong_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no quality gate 'nope'"):
        load_gate("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules: {psnr: {max_ratio: -1}}\n")
    with pytest.raises(ValueError, match=f"quality gate '{bad}'"):
        load_gate(bad)
