"""Training the mask predictor on windows of K observed + R future frames of the semantic shards.

Losses per predicted frame (non-ignore pixels): cross-entropy of p_{t+1} against the real map, and the
paper's flow loss (Eq. 8) in label space: cross-entropy of the flow-warped last map alone on pixels the
reference flow says are visible in both frames, plus the end-point error against the reference
backward flow. Frames after the first are predicted from the network's own predictions (its
class probabilities), as at test time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from models.vid2vid.batch import reference_backward_flows
from models.vid2vid.warp import resize_flow

from .config import PredictorConfig
from .network import MaskPredictor
from .rollout import History, MapFrame, next_frame

CHECKPOINT_FORMAT = "mask-predictor/1"
EPS = 1e-6


def fit_batch(batch: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Bring a dataset batch to the config's (width, height) by an integer downsampling factor."""
    height, width = batch["semantic"].shape[-2:]
    if (width, height) == size:
        return batch
    factor = width // size[0]
    if factor < 1 or width != size[0] * factor or height != size[1] * factor:
        raise ValueError(f"training frames are {width}x{height}; the predictor config wants {size[0]}x{size[1]} "
                         f"(an integer factor smaller)")
    out = {}
    for key, value in batch.items():
        if key in ("semantic", "instance"):
            out[key] = value[..., factor // 2::factor, factor // 2::factor]
        elif key == "flow":
            b, n = value.shape[:2]
            out[key] = resize_flow(value.flatten(0, 1), factor).reshape(b, n, 2, size[1], size[0])
        elif key == "occlusion":
            b, n = value.shape[:2]
            out[key] = F.max_pool2d(value.flatten(0, 1), factor).reshape(b, n, 1, size[1], size[0])
    return out


def masked_nll(probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of probabilities (B, C, H, W) against ids (B, H, W), averaged with ``weight`` (B, H, W)."""
    probs = probs / probs.sum(1, keepdim=True).clamp_min(EPS)
    picked = probs.gather(1, target.clamp(0, probs.shape[1] - 1).unsqueeze(1))[:, 0]
    return -(torch.log(picked.clamp_min(EPS)) * weight).sum() / weight.sum().clamp_min(1.0)


def average_gradients(model: torch.nn.Module) -> None:
    """Data parallelism by hand: one rollout calls the network several times before ``backward``, which
    DDP's reducer does not allow, so gradients are all-reduced after it instead."""
    world = dist.get_world_size()
    for param in model.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= world


class PredictorTrainer:
    def __init__(self, config: PredictorConfig, device: torch.device | str = "cpu", *, distributed: bool = False) -> None:
        self.config, self.device, self.distributed = config, torch.device(device), distributed
        torch.manual_seed(config.train.seed)
        self.model = MaskPredictor(config).to(self.device)
        t = config.train
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
        self.step, self.epoch = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """The predictor has no schedule: the epoch only seeds the shuffle and is saved with the state."""
        self.epoch = epoch

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch = {k: v.to(self.device) for k, v in fit_batch(batch, cfg.size).items()}
        semantic, instance = batch["semantic"].long(), batch.get("instance")
        if semantic.shape[1] < cfg.window:
            raise ValueError(f"a training sample needs {cfg.window} frames (history {cfg.history} + rollout "
                             f"{cfg.train.rollout}), got {semantic.shape[1]}")
        backward, confidence = reference_backward_flows(batch)
        if backward is None:
            raise ValueError("training the predictor needs the flow stage (reference flows)")
        history = History(cfg)
        for t in range(cfg.history):
            flow = backward[:, t - 1] if t > 0 else torch.zeros_like(backward[:, 0])
            history.push(MapFrame(semantic[:, t], None if instance is None else instance[:, t].long(), flow))
        totals = {"ce": 0.0, "warp": 0.0, "epe": 0.0}
        for r in range(cfg.train.rollout):
            t = cfg.history + r  # the frame predicted now
            out = self.model(*history.inputs())
            target = semantic[:, t]
            valid = (target != cfg.input.ignore_label).float()
            visible = valid * (confidence[:, t - 1, 0] if confidence is not None else 1.0)
            totals["ce"] = totals["ce"] + masked_nll(out["probs"], target, valid)
            totals["warp"] = totals["warp"] + masked_nll(out["warped"], target, visible)
            epe = (out["flow"] - backward[:, t - 1]).norm(dim=1)
            totals["epe"] = totals["epe"] + (epe * visible).sum() / visible.sum().clamp_min(1.0)
            history.push(next_frame(history, out["probs"].detach(), out["flow"].detach()))
        n = cfg.train.rollout
        losses = {key: value / n for key, value in totals.items()}
        losses["total"] = losses["ce"] + cfg.loss.lambda_warp * losses["warp"] + cfg.loss.lambda_flow * losses["epe"]
        return losses

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.model.train()
        losses = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        if self.distributed:
            average_gradients(self.model)
        self.optimizer.step()
        self.step += 1
        return {f"P_{key}": float(value.detach()) for key, value in losses.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "kind": self.config.kind, "config": self.config.to_dict(),
                "step": self.step, "epoch": self.epoch, "predictor": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a mask-predictor checkpoint (format {state.get('format')!r})")
        self.model.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
