"""Objectives: LSGAN, discriminator feature matching, VGG19 feature matching and the flow loss of Eq. 8."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from models.weights import WeightSpec, load_into

from .warp import warp


def lsgan_loss(predictions: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """Least-squares GAN loss summed over discriminator scales (last layer of each is the prediction)."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(scale[-1], torch.full_like(scale[-1], target)) for scale in predictions)  # type: ignore[return-value]


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching: L1 between intermediate D features, real detached."""
    num_d = len(fake)
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        n_layers = len(fake_scale) - 2  # PatchGAN outputs: n_layers + 2 (pix2pixHD: 4 / (n_layers_D + 1))
        weight = 4.0 / (n_layers + 1) / num_d
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + weight * F.l1_loss(f, r.detach())
    return total


def split_batch(predictions: list[list[torch.Tensor]], n_real: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Split D outputs computed on cat([real, fake]) back into (real, fake)."""
    real = [[f[:n_real] for f in scale] for scale in predictions]
    fake = [[f[n_real:] for f in scale] for scale in predictions]
    return real, fake


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None,
              mode: str = "weighted_mean") -> torch.Tensor:
    """Mean absolute difference, optionally weighted per pixel (weight broadcast over channels):
    "weighted_mean" divides by the weights' sum, "masked_mean" is NVIDIA's MaskedL1Loss, the plain mean of
    |a*w - b*w| over every pixel (low-confidence regions shrink the loss instead of being re-weighted)."""
    diff = (a - b).abs()
    if weight is None:
        return diff.mean()
    weight = weight.expand_as(diff)
    if mode == "masked_mean":
        return (a * weight - b * weight).abs().mean()
    return (diff * weight).sum() / weight.sum().clamp_min(1.0)


def flow_loss(
    flow: torch.Tensor,
    real_prev: torch.Tensor,
    real_cur: torch.Tensor,
    reference: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    mode: str = "weighted_mean",
) -> dict[str, torch.Tensor]:
    """Eq. 8 for a set of frames: ``epe`` = |w~ - w|_1 (only with a reference), ``warp`` = |w~(x_{t-1}) - x_t|_1.

    All flows in the generator's convention (warp frame t-1 onto frame t, on frame t's grid).
    """
    out = {"warp": masked_l1(warp(real_prev, flow), real_cur, confidence, mode)}
    if reference is not None:
        out["epe"] = masked_l1(flow, reference, confidence, mode)
    return out


class VGGLoss(nn.Module):
    """VGG19 feature matching (pix2pixHD weights 1/32 .. 1 on relu1_1 .. relu5_1), inputs in [-1, 1].

    The ImageNet weights come only from the weights registry (``models.weights``): a missing file is a
    MissingWeightsError naming it, never a random network.
    """

    LAYERS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19.features
    WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None, spec: str | WeightSpec = "vgg19") -> None:
        super().__init__()
        import torchvision  # here, not at the top: 2 s of every process's start-up, needed only with VGG on

        with torch.device("meta"):  # no random init of 143M parameters: every one is overwritten below
            vgg = torchvision.models.vgg19(weights=None)
        vgg = vgg.to_empty(device="cpu")
        load_into(vgg, spec, weights_dir)  # strict: a missing key would leave uninitialised memory
        features = vgg.features
        self.slices = nn.ModuleList()
        start = 0
        for end in self.LAYERS:
            self.slices.append(nn.Sequential(*[features[i] for i in range(start, end + 1)]))
            start = end + 1
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGLoss":
        return super().train(False)  # frozen feature extractor, always in eval mode

    def _features(self, x: torch.Tensor, raw: bool = False) -> list[torch.Tensor]:
        if not raw:
            x = ((x + 1) / 2 - self.mean) / self.std
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, fake: torch.Tensor, real: torch.Tensor, inputs: str = "imagenet") -> torch.Tensor:
        """``inputs``: "imagenet" normalises [-1, 1] frames as VGG was trained; "official" feeds them as
        NVIDIA's VGGLoss does (unnormalised, 2x2-average-pooled while wider than 1024)."""
        official = inputs == "official"
        if official:
            while fake.shape[-1] > 1024:
                fake, real = F.avg_pool2d(fake, 2, 2), F.avg_pool2d(real, 2, 2)
        fake_feats = self._features(fake, official)
        with torch.no_grad():
            real_feats = self._features(real, official)
        return sum(w * F.l1_loss(f, r) for w, f, r in zip(self.WEIGHTS, fake_feats, real_feats))  # type: ignore[return-value]
