"""What every flow's parameter model shares: strictness, and composing a flow's parameters from settings.

Parameter models are the forms the Prefect UI renders and the CLI fills in. They refuse unknown keys, so
a misspelt option fails before any work instead of being silently ignored. A flow's parameters are its
target (dataset, roots) plus a settings model that other flows hold as they are (the full rebuild holds
each sub-flow's settings), so a new knob is one field in one model.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

M = TypeVar("M", bound=BaseModel)


class FlowParams(BaseModel):
    """Base of every parameter model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


def settings_of(params: BaseModel, settings: type[M]) -> dict[str, Any]:
    """The fields of ``settings`` that ``params`` carries (params subclass the settings they pass on)."""
    return {name: getattr(params, name) for name in settings.model_fields}


def compose(params: type[M], settings: BaseModel, **target: Any) -> M:
    """A flow's parameters from a settings model held elsewhere plus the target the caller decides."""
    return params.model_validate({**settings_of(settings, type(settings)), **target})
