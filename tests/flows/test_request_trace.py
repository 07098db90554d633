"""Resolve once, pass objects (issue 22, item 1): the counting of scripts/trace_request.py, checked on calls it
must count. The goal itself (a rebuild's request climbs back up at most ``MAX_CLIMBS`` times and opens each model file
once per consumer) is asserted on the input matrix's street rebuild (tests/flows/test_input_matrix.py), traced
there instead of running one more rebuild for it."""

from __future__ import annotations

import torch

from models.safe_load import torch_load_safely
from models.training.review import active_losses
from models.vid2vid.config import load_model_config
from scripts.trace_request import Tracer
from storage.target import resolve_target


def test_a_resolution_below_the_entry_is_a_climb_and_a_second_open_is_counted(tmp_path):
    config = load_model_config("tiny")
    with Tracer() as trace:
        active_losses(config, [])  # the object passed down: nothing resolved
        resolve_target("street", tmp_path / "data")  # called from here (not our packages): outside, not a climb
    assert trace.climbs == [] and trace.opens == []
    assert [(r.name, r.site) for r in trace.resolutions] == [("resolve_target", None)]

    with Tracer() as trace:
        active_losses(config.to_dict(), [])  # plain data validated again, in models/: a climb
    assert [(r.name, r.site.split(":")[0], r.function) for r in trace.climbs] == [
        ("ModelConfig.model_validate", "models/training/review.py", "active_losses")]
    assert trace.per_function()["ModelConfig.model_validate"]["climbs"] == 1

    path = tmp_path / "model.pt"
    torch.save({"generator": {}}, path)
    with Tracer() as trace:
        torch_load_safely(path, ValueError, "model")
    assert trace.repeated_opens() == {}
    with Tracer() as trace:
        torch_load_safely(path, ValueError, "model")
        torch_load_safely(path, ValueError, "model")
    assert trace.repeated_opens() == {(str(path.resolve()), "models/safe_load.py:torch_load_safely"): 2}
