"""The run forms the Prefect UI renders: every field, nested ones included, says what it is."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flows.evaluate import EvaluateParams
from flows.ingest import IngestParams, SynthParams
from flows.preprocess import PreprocessParams
from flows.rebuild import RebuildParams
from flows.synthesize import SynthesizeParams
from flows.train import TrainParams


def _undescribed(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(prefix + name)
        nested = field.annotation
        for candidate in (nested, *getattr(nested, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                missing += _undescribed(candidate, f"{prefix}{name}.")
    return missing


@pytest.mark.parametrize("form", [TrainParams, PreprocessParams, EvaluateParams, IngestParams, SynthParams,
                                  RebuildParams, SynthesizeParams])
def test_every_run_form_field_has_a_description(form):
    assert _undescribed(form) == []
