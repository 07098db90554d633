"""Resolve once, pass objects (issue 22, item 1): a tiny rebuild's request, traced by scripts/trace_request.py,
resolves its target and model config at the entry, climbs back up to resolve them again at most 8 times, and
opens each model file once per consumer. The counting itself is checked first on calls it must count."""

from __future__ import annotations

import pytest
import torch

from models.safe_load import torch_load_safely
from models.training.review import active_losses
from models.vid2vid.config import load_model_config
from scripts.trace_request import Tracer, trace_rebuild
from storage.target import resolve_target

MAX_CLIMBS = 8


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


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("prefect_server", "shared_services")
def test_a_tiny_rebuild_resolves_its_request_once_and_opens_each_model_file_once_per_consumer(tmp_path):
    trace, code = trace_rebuild(tmp_path)
    assert code == 0
    table = trace.table()
    print(table)  # the numbers, for `pytest -s`
    rows = trace.per_function()
    assert rows["resolve_target"]["entry"] == 1 and rows["load_model_config"]["entry"] == 1, table
    assert len(trace.climbs) <= MAX_CLIMBS, table
    assert trace.repeated_opens() == {}, table
    consumers = {consumer for path, consumer in trace.opens if path.endswith("model.pt")}
    assert {"tasks/evaluate.py:evaluate_run_task", "tasks/train.py:publish_training_task"} <= consumers, table
