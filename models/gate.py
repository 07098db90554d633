"""The quality gate: whether a challenger may replace the champion, decided from one evaluation of both.

The gate is data (``configs/gate/<name>.yaml``, strict): per metric one tolerance against the champion
(``max_drop``/``max_rise`` in the metric's unit, ``max_ratio``/``min_ratio`` as a factor) and, for a first
model, declared minimums (``at_least``/``at_most``). Every value the challenger produced must be a finite
number, and every metric the gate names must have been computed for both; anything else is a rejection
with the reason, never a silent pass. Pure rules: no Prefect, no files besides the YAML.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.metrics.names import metric_names
from models.metrics.report import FIRST_FRAME, SCORED_FROM
from models.vid2vid.config import read_preset

GATE_DIR = Path(__file__).resolve().parents[1] / "configs" / "gate"
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|infinity))\b", re.IGNORECASE)


class Tolerance(BaseModel):
    """How much worse than the champion a challenger may be on one metric (exactly one field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_drop: float | None = Field(default=None, ge=0, description="higher is better: value >= champion - max_drop")
    max_rise: float | None = Field(default=None, ge=0, description="lower is better: value <= champion + max_rise")
    max_ratio: float | None = Field(default=None, gt=0, description="lower is better: value <= max_ratio x champion")
    min_ratio: float | None = Field(default=None, gt=0, description="higher is better: value >= min_ratio x champion")

    @model_validator(mode="after")
    def _one(self) -> "Tolerance":
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of max_drop, max_rise, max_ratio, min_ratio (got {given or 'none'})")
        if not all(math.isfinite(v) for v in self.model_dump().values() if v is not None):
            raise ValueError("a tolerance must be a finite number")
        return self

    def check(self, value: float, champion: float) -> tuple[bool, str]:
        if self.max_drop is not None:
            return value >= champion - self.max_drop, f"drop {champion - value:+.4g} (allowed {self.max_drop:g})"
        if self.max_rise is not None:
            return value <= champion + self.max_rise, f"rise {value - champion:+.4g} (allowed {self.max_rise:g})"
        ratio = value / champion if champion else (1.0 if value == champion else math.inf)
        if self.max_ratio is not None:
            return value <= self.max_ratio * champion, f"{ratio:.3g}x (allowed ≤ {self.max_ratio:g}x)"
        return value >= self.min_ratio * champion, f"{ratio:.3g}x (allowed ≥ {self.min_ratio:g}x)"


class Minimum(BaseModel):
    """What a first model must reach on one metric (one or both bounds)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _some(self) -> "Minimum":
        bounds = [v for v in (self.at_least, self.at_most) if v is not None]
        if not bounds or not all(math.isfinite(v) for v in bounds):
            raise ValueError("give at_least and/or at_most as finite numbers")
        return self

    def check(self, value: float) -> tuple[bool, str]:
        ok = (self.at_least is None or value >= self.at_least) and (self.at_most is None or value <= self.at_most)
        bounds = " and ".join(b for b in (f"≥ {self.at_least:g}" if self.at_least is not None else "",
                                         f"≤ {self.at_most:g}" if self.at_most is not None else "") if b)
        return ok, f"needs {bounds}"


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    rules: dict[str, Tolerance] = Field(description="metric -> tolerance against the champion")
    minimums: dict[str, Minimum] = Field(default_factory=dict, description="metric -> bounds for a first model")

    @field_validator("rules", "minimums")
    @classmethod
    def _metrics(cls, value: dict[str, Any]) -> dict[str, Any]:
        names = metric_names(list(value)) if value else []  # unknown metric names are refused here
        if len(set(names)) != len(names):
            raise ValueError(f"a metric is named twice (aliases resolve to {names})")
        return dict(zip(names, value.values()))

    @model_validator(mode="after")
    def _not_empty(self) -> "GateConfig":
        if not self.rules:
            raise ValueError("a gate needs at least one rule")
        return self

    @property
    def metrics(self) -> list[str]:
        """The metrics the evaluation must compute: every one a rule or a minimum names."""
        return list(dict.fromkeys([*self.rules, *self.minimums]))


def load_gate(name_or_path: str | os.PathLike[str]) -> GateConfig:
    """A gate preset under configs/gate/ or a YAML path; invalid data is an error naming the file."""
    data = read_preset(name_or_path, GATE_DIR, "quality gate")
    try:
        return GateConfig.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"quality gate {str(name_or_path)!r}: {exc}") from None


def protocol(metrics: list[str], split: str) -> str:
    """How held-out numbers were computed, stored beside them: rows with another protocol are not comparable."""
    return (f"vid2vid-eval/1: split {split}; first frame {FIRST_FRAME} for every model; frames {SCORED_FROM}.. "
            f"scored from lossless copies; metrics {', '.join(sorted(metrics))}")


def number(value: Any) -> float | None:
    """A metric value as a number: floats as they are, labelled text such as ``"12.3 (unverified weights)"``
    by its leading number; None for text saying why it was not computed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _NUMBER.match(str(value))
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class Check:
    metric: str
    challenger: Any
    champion: Any
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: list[Check]
    reasons: list[str] = field(default_factory=list)  # one line per failed check (or what passed)


def _finite_problems(values: dict[str, Any]) -> list[str]:
    return [f"{metric} is {value!r}: not a finite number" for metric, value in values.items()
            if (n := number(value)) is not None and not math.isfinite(n)]


def judge(gate: GateConfig, challenger: dict[str, Any], champion: dict[str, Any] | None) -> Verdict:
    """The verdict on a challenger's values against the champion's from the same evaluation (or, with no
    champion, against the gate's minimums)."""
    checks: list[Check] = []
    problems = _finite_problems(challenger)
    rules: dict[str, Any] = gate.rules if champion is not None else gate.minimums
    if champion is None and not rules:
        problems.append(f"gate {gate.name!r} declares no minimums, so no first model can pass it")
    for metric, rule in rules.items():
        mine = number(challenger.get(metric))
        theirs = number(champion.get(metric)) if champion is not None else None
        if mine is None or not math.isfinite(mine):
            checks.append(Check(metric, challenger.get(metric, "missing"), None if champion is None else
                                champion.get(metric), False, f"challenger's {metric} is not a finite number: "
                                f"{challenger.get(metric, 'not computed')!r}"))
            continue
        if champion is None:
            ok, detail = rule.check(mine)
            checks.append(Check(metric, mine, None, ok, f"{mine:.4g} {detail}"))
            continue
        if theirs is None or not math.isfinite(theirs):
            checks.append(Check(metric, mine, champion.get(metric, "missing"), False,
                                f"champion's {metric} is not a finite number: {champion.get(metric, 'not computed')!r}"))
            continue
        ok, detail = rule.check(mine, theirs)
        checks.append(Check(metric, mine, theirs, ok, f"{mine:.4g} vs champion {theirs:.4g}: {detail}"))
    failed = [f"{c.metric}: {c.detail}" for c in checks if not c.passed] + problems
    passed = not failed
    reasons = failed if failed else [f"{c.metric}: {c.detail}" for c in checks]
    return Verdict(passed=passed, checks=checks, reasons=reasons)
