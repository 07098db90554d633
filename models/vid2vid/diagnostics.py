"""What a training run cannot show through its losses: how the flow/mask branch and the recurrence behave.

On one held-out clip (a batch-contract sample with its reference flow), with the generator as synthesis runs
it (eval mode, no grads):

* ``l1_free[t]``: L1 of frame t generated *free-running* from the real frame 0, every later frame from the
  model's own previous outputs (what evaluation and synthesis do);
* ``l1_teacher[t]``: L1 of frame t generated from the *real* previous frames (what training mostly sees);
* ``l1_hallucinated_mean``: L1 of the hallucinated frame alone (H of Eq. 4/9, before the warped previous frame
  is blended in), teacher-forced: what the model can make without copying;
* ``flow_epe``: the end-point error (Euclidean, pixels) of the generator's flow against the reference backward
  flow, over the pixels the reference marks valid (``1 - occlusion``), teacher-forced;
* ``mask_mean``: the mean soft occlusion mask (1 = hallucinate, 0 = copy the warped previous frame),
  teacher-forced and free-running.

A free-running curve that climbs away from a flat teacher-forced one is error accumulation through the
recurrence; a flow EPE that does not fall is a flow branch that is not learning.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .batch import encode_source, frame_background_mask, class_labels, reference_backward_flows
from .generator import Vid2VidGenerator


def _window(frames: list[torch.Tensor], t: int, n: int) -> torch.Tensor:
    """Frames t-n .. t-1 (the first one repeated before the clip starts), stacked on dim 1."""
    return torch.stack([frames[max(i, 0)] for i in range(t - n, t)], dim=1)


@torch.inference_mode()
def rollout_diagnostics(generator: Vid2VidGenerator, clip: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """Per-frame free-running and teacher-forced L1, flow EPE and mean mask on ``clip`` (batch contract, with
    or without the leading batch dimension). Frames 1..T-1 are scored; frame 0 is the given real frame, and
    the first L source / previous frames are padded by repeating frame 0, as synthesis pads them."""
    config = generator.config
    batch = {k: v for k, v in clip.items() if torch.is_tensor(v)}
    if batch["image"].dim() == 4:  # one sample without its batch dimension
        batch = {k: v.unsqueeze(0) for k, v in batch.items()}
    device = next(generator.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    real = batch["image"].float()
    T, L = real.shape[1], generator.n_prev
    source = encode_source(config, batch)
    background = frame_background_mask(config, class_labels(config, batch), real)
    ref_flow, ref_conf = reference_backward_flows(batch)
    was_training = generator.training
    generator.eval()
    try:
        sources = [source[:, t] for t in range(T)]
        reals = [real[:, t] for t in range(T)]
        free: list[torch.Tensor] = [reals[0]]
        l1_free, l1_teacher, l1_raw, epe, mask_free, mask_teacher = [], [], [], [], [], []
        for t in range(1, T):
            src = torch.cat([_window(sources, t, L), sources[t].unsqueeze(1)], dim=1) if L else sources[t].unsqueeze(1)
            free_out = generator(src, _window(free, t, L) if L else None, background[:, t])
            free.append(free_out["image"])
            l1_free.append(float((free_out["image"] - reals[t]).abs().mean()))
            if not L:  # frame by frame: no recurrence, the two curves are one
                l1_teacher.append(l1_free[-1])
                continue
            teacher_out = generator(src, _window(reals, t, L), background[:, t])
            l1_teacher.append(float((teacher_out["image"] - reals[t]).abs().mean()))
            l1_raw.append(float((teacher_out["hallucinated"] - reals[t]).abs().mean()))
            if "mask" in teacher_out:
                mask_teacher.append(float(teacher_out["mask"].mean()))
                mask_free.append(float(free_out["mask"].mean()))
            if "flow" in teacher_out and ref_flow is not None:
                error = (teacher_out["flow"] - ref_flow[:, t - 1]).norm(dim=1, keepdim=True)
                weight = ref_conf[:, t - 1] if ref_conf is not None else torch.ones_like(error)
                epe.append(float((error * weight).sum() / weight.sum().clamp_min(1.0)))
    finally:
        generator.train(was_training)
    mean = lambda values: sum(values) / len(values) if values else float("nan")  # noqa: E731
    return {
        "l1_free": l1_free, "l1_teacher": l1_teacher,
        "l1_free_mean": mean(l1_free), "l1_teacher_mean": mean(l1_teacher), "l1_hallucinated_mean": mean(l1_raw),
        "flow_epe": mean(epe), "mask_mean": mean(mask_teacher), "mask_mean_free": mean(mask_free),
    }
