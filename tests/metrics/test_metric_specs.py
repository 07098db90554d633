"""The one metric table: every lookup the pipeline shows or checks is read from it, and each entry's network
and weights exist, so a metric added in one place works everywhere."""

from __future__ import annotations

from models import weights
from models.metric_display import BETTER, FORMATS, LABELS, cell, header
from models.metrics.features import NETWORKS
from models.metrics.names import DEFAULT_METRICS, METRIC_ALIASES, METRICS, SPECS, metric_names
from review.paper import METRIC_COLUMNS


def test_every_lookup_is_read_from_the_one_table() -> None:
    names = [spec.name for spec in SPECS]
    assert len(set(names)) == len(names) and len({spec.alias for spec in SPECS}) == len(SPECS)
    assert list(METRICS) == names == METRIC_COLUMNS == list(LABELS) == list(BETTER) == list(FORMATS)
    assert metric_names(DEFAULT_METRICS) == names and set(METRIC_ALIASES.values()) == set(names)
    for spec in SPECS:
        assert header(spec.name).startswith(spec.label) and header(spec.name).endswith("↓" if spec.better == "lower" else "↑")
        assert cell(spec.name, 1.0) == spec.fmt.format(1.0)


def test_each_feature_network_is_built_and_filled_by_the_entry_its_metric_names() -> None:
    for spec in SPECS:
        assert (spec.network is None) == (spec.weights is None), spec
        if spec.network:
            assert NETWORKS[spec.network].weights == spec.weights
            assert weights.get_spec(spec.weights).name == spec.weights
