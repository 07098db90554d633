"""Progress as the CLI shows it off a terminal, and what the training pictures mark (no server, no Ray)."""

from __future__ import annotations

import io

from models.training.review import active_losses, loss_curve_png, schedule_changes
from models.vid2vid.config import load_model_config
from tasks import progress


def test_plain_lines_count_rate_eta_and_a_closing_line():
    out = io.StringIO()
    with progress.rendering(progress.PlainLines(out, every=0)):
        with progress.track("ingest d", 4, "clips") as tracker:
            for _ in range(4):
                tracker.advance(detail="clip")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[ingest d] started: 4 clips"
    assert lines[1].startswith("[ingest d] 1/4 clips (25%), ") and "clips/s, ETA " in lines[1]
    assert lines[4].startswith("[ingest d] 4/4 clips (100%)") and "ETA" not in lines[4]
    assert lines[-1].startswith("[ingest d] done: 4 clips in ")


def test_plain_lines_are_periodic_and_nothing_is_drawn_without_a_renderer():
    out = io.StringIO()
    with progress.rendering(progress.PlainLines(out, every=3600)):
        with progress.track("train", 100, "steps") as tracker:
            for step in range(1, 101):
                tracker.update(step)
    assert len(out.getvalue().splitlines()) == 3  # started, the first update, done
    with progress.track("silent", 2) as tracker:  # no CLI: a no-op
        tracker.advance()
    assert progress.for_terminal(io.StringIO()).__class__ is progress.PlainLines


def test_inactive_losses_are_not_shown_and_schedule_changes_are_found():
    model = load_model_config("tiny").to_dict()
    model["loss"]["lambda_mask"] = 0.0
    metrics = [{"step": s, "G_total": 3.0, "G_mask": 0.0, "G_flow_epe": 0.0, "seq_len": 4 if s < 3 else 8,
                "n_scales": 1 if s < 5 else 2} for s in range(1, 7)]
    active = active_losses(model, metrics)
    assert "G_total" in active and "G_mask" not in active and "G_flow_epe" not in active  # weight 0 / never computed
    if not (model["loss"]["use_vgg"] and model["loss"]["lambda_vgg"] > 0):
        assert "G_VGG" not in active
    assert schedule_changes(metrics) == [(3, "seq_len 4→8"), (5, "n_scales 1→2")]
    assert loss_curve_png(metrics, ["G_total"])[:4] == b"\x89PNG"
