"""Per-frame scores of a prediction against the real future: mIoU of label maps, PSNR and SSIM of frames.

mIoU accumulates intersections and unions per class over all frames given (the Cityscapes way), then
averages over the classes that occur in either map. SSIM is Wang et al. (2004) with an 11×11 Gaussian
window (σ = 1.5), K1 = 0.01, K2 = 0.03, on each RGB channel, averaged — the usual image-quality setting.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class IoUAccumulator:
    def __init__(self, num_classes: int, ignore_label: int = 255) -> None:
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.intersection = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)

    def update(self, predicted: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor) -> None:
        predicted, real = np.asarray(predicted).ravel(), np.asarray(real).ravel()
        keep = (real != self.ignore_label) & (real < self.num_classes)
        predicted, real = predicted[keep].astype(np.int64), real[keep].astype(np.int64)
        predicted = np.where(predicted < self.num_classes, predicted, self.num_classes)  # "no class": never right
        n = self.num_classes + 1
        confusion = np.bincount(real * n + predicted, minlength=n * n).reshape(n, n)[: self.num_classes]
        hits = np.diag(confusion[:, : self.num_classes])
        self.intersection += hits
        self.union += confusion.sum(1) + confusion[:, : self.num_classes].sum(0) - hits

    @property
    def miou(self) -> float:
        present = self.union > 0
        return float((self.intersection[present] / self.union[present]).mean()) if present.any() else float("nan")


def miou(predicted: np.ndarray, real: np.ndarray, num_classes: int, ignore_label: int = 255) -> float:
    acc = IoUAccumulator(num_classes, ignore_label)
    acc.update(predicted, real)
    return acc.miou


def psnr(predicted: np.ndarray, real: np.ndarray) -> float:
    """dB for uint8 frames (H, W, 3); identical frames give +inf."""
    mse = np.mean((predicted.astype(np.float64) - real.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(predicted: np.ndarray, real: np.ndarray) -> float:
    """Mean SSIM of two uint8 frames (H, W, 3), valid windows only (no padding)."""
    x = torch.from_numpy(predicted.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(real.astype(np.float64)).permute(2, 0, 1)[None]
    window = _gaussian_window(min(11, *x.shape[-2:]))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, window, groups=3), F.conv2d(y, window, groups=3)
    var_x = F.conv2d(x * x, window, groups=3) - mu_x**2
    var_y = F.conv2d(y * y, window, groups=3) - mu_y**2
    cov = F.conv2d(x * y, window, groups=3) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(value.mean())
