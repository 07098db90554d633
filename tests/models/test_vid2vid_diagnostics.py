"""Held-out diagnostics (models/vid2vid/diagnostics.py): the curves and numbers a training run logs."""

from __future__ import annotations

import torch

from models.vid2vid import Vid2VidTrainer
from models.vid2vid.batch import reference_backward_flows
from models.vid2vid.diagnostics import rollout_diagnostics
from tests.models.helpers_vid2vid import moving_clip, tiny_config


def test_zero_flow_epe_is_the_reference_flows_length_and_curves_cover_every_scored_frame():
    config = tiny_config(generator={"n_scales": 1})
    generator = Vid2VidTrainer(config).G.generator
    head = generator.scales[0].flow_out[1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)  # W predicts no motion: its EPE is the reference flow's own length
    clip = {k: v[0] for k, v in moving_clip(T=6, shift=2).items()}  # one sample, no batch dimension
    result = rollout_diagnostics(generator, clip)
    reference, _ = reference_backward_flows({k: v.unsqueeze(0) for k, v in clip.items()})
    assert abs(result["flow_epe"] - float(reference.norm(dim=2).mean())) < 1e-4
    assert len(result["l1_free"]) == len(result["l1_teacher"]) == 5
    # frame 1 is made from the real frame 0 either way; later free-running frames from the model's own outputs
    assert result["l1_free"][0] == result["l1_teacher"][0]
    assert result["l1_free"][1:] != result["l1_teacher"][1:]
    assert 0.0 < result["mask_mean"] < 1.0 and 0.0 < result["l1_hallucinated_mean"]
    assert generator.training  # left as it was found


def test_frame_by_frame_model_has_one_curve_and_no_flow_numbers():
    config = tiny_config(generator={"n_scales": 1, "n_prev": 0, "use_flow_warping": False},
                         discriminator={"use_video_discriminator": False}, frame_by_frame=True)
    generator = Vid2VidTrainer(config).G.generator.eval()
    result = rollout_diagnostics(generator, moving_clip(T=4))
    assert result["l1_free"] == result["l1_teacher"] and len(result["l1_free"]) == 3
    assert result["flow_epe"] != result["flow_epe"] and result["mask_mean"] != result["mask_mean"]  # NaN: none
    assert not generator.training
