"""PSNR and SSIM of synthesized vs. real frames: possible here because the labels come from the real frames.

PSNR (dB, peak 255) and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03,
valid windows only, mean over the three RGB channels) per frame, averaged over the frames of a clip.
They reward reproducing *this* clip's pixels, which a GAN need not do (textures it cannot know), so
they sit beside FID rather than replace it; they do separate a model that learned the scene layout and
colours from one that did not.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

PEAK = 255.0
PSNR_CAP = 100.0  # identical frames: reported as 100 dB rather than infinity


@dataclasses.dataclass(frozen=True)
class Fidelity:
    psnr: float  # dB, mean over frames
    ssim: float  # mean over frames
    frames: int


def _pair(fake: np.ndarray, real: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    fake, real = np.asarray(fake), np.asarray(real)
    if fake.shape != real.shape or fake.ndim != 4 or fake.shape[-1] != 3:
        raise ValueError(f"need two (T, H, W, 3) clips of one shape, got {fake.shape} and {real.shape}")
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64).permute(0, 3, 1, 2)  # noqa: E731
    return as_t(fake), as_t(real)


def psnr_per_frame(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    a, b = _pair(fake, real)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(PEAK ** 2 / mse), PSNR_CAP)


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_per_frame(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    a, b = _pair(fake, real)
    g = _gaussian()
    if min(a.shape[-2:]) < g.numel():
        raise ValueError(f"SSIM needs frames of at least {g.numel()}x{g.numel()} pixels, got {tuple(a.shape[-2:])}")
    kernel_h = g.view(1, 1, 1, -1).expand(3, 1, 1, -1)
    kernel_v = g.view(1, 1, -1, 1).expand(3, 1, -1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=3), kernel_v, groups=3)

    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim.mean(dim=(1, 2, 3)).numpy()


def fidelity(fake: np.ndarray, real: np.ndarray) -> Fidelity:
    """Mean PSNR and SSIM over the frames of one clip pair."""
    return Fidelity(psnr=float(psnr_per_frame(fake, real).mean()), ssim=float(ssim_per_frame(fake, real).mean()),
                    frames=len(fake))
