"""The mask predictor network: the next frame's label map from the last K maps and the flows between them.

Like the vid2vid generator (Eq. 4) it combines a flow-warped previous frame with a hallucinated one:

    p_{t+1} = m * warp(onehot_t, w) + (1 - m) * softmax(h)

with ``w`` the backward flow t+1 -> t (on frame t+1's grid), ``m`` a soft mask and ``h`` per-class
logits. ``w`` is the constant-velocity extrapolation of the last observed flow plus a learned
correction; the output layer starts at zero, so an untrained network predicts the extrapolation and
training learns where motion changes and what appears in disoccluded regions. The mask starts at
sigmoid(2) ≈ 0.88: mostly the warped map, with room to learn where hallucination must take over.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.vid2vid.layers import conv_block, init_weights, output_conv, res_layers, up_block
from models.vid2vid.warp import warp

from .config import PredictorConfig

MASK_BIAS = 2.0


def extrapolate_flow(backward: torch.Tensor) -> torch.Tensor:
    """Constant velocity: the backward flow t+1 -> t from the backward flow t -> t-1 (B, 2, H, W).

    Each point keeps its velocity and carries it along: the flow at p in frame t+1 is the flow found at
    p + w(p) in frame t (one fixed-point step from w = b_t).
    """
    return warp(backward, backward)


class MaskPredictor(nn.Module):
    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        inp, net, k = config.input, config.network, config.history
        in_ch = k * inp.num_classes + (k if inp.use_instance else 0) + 2 * (k - 1)
        layers: list[nn.Module] = [conv_block(in_ch, net.nf, 7, 1, net.norm, reflect=True)]
        ch = net.nf
        for _ in range(net.n_downsampling):
            layers.append(conv_block(ch, ch * 2, 3, 2, net.norm))
            ch *= 2
        layers.append(nn.Sequential(*res_layers(ch, net.n_blocks, net.norm)))
        for _ in range(net.n_downsampling):
            layers.append(up_block(ch, ch // 2, net.norm))
            ch //= 2
        self.body = nn.Sequential(*layers)
        self.head = output_conv(ch, 2 + 1 + inp.num_classes)  # flow correction, mask, class logits
        init_weights(self)
        nn.init.zeros_(self.head[1].weight)
        with torch.no_grad():
            self.head[1].bias[2] = MASK_BIAS

    def forward(self, labels: torch.Tensor, boundaries: torch.Tensor | None, flows: torch.Tensor) -> dict[str, torch.Tensor]:
        """labels (B, K, C, H, W) one-hot or probabilities, boundaries (B, K, 1, H, W) or None,
        flows (B, K-1, 2, H, W) backward flows in pixels (entry j: frame j+1 -> frame j)."""
        b, k, c, h, w = labels.shape
        norm = self.config.network.flow_norm
        parts = [labels.reshape(b, k * c, h, w), flows.reshape(b, -1, h, w) / norm]
        if self.config.input.use_instance:
            if boundaries is None:
                raise ValueError("this predictor needs instance boundaries (input.use_instance)")
            parts.append(boundaries.reshape(b, k, h, w))
        out = self.head(self.body(torch.cat(parts, 1)))
        flow = extrapolate_flow(flows[:, -1]) + out[:, :2] * norm
        mask = torch.sigmoid(out[:, 2:3])
        logits = out[:, 3:]
        warped = warp(labels[:, -1], flow)
        probs = mask * warped + (1 - mask) * F.softmax(logits, 1)
        return {"flow": flow, "mask": mask, "logits": logits, "warped": warped, "probs": probs}
