"""3D-ResNeXt-101 (Hara et al., CVPR 2018) for video FID features.

Attribute names follow ``models/resnext.py`` of kenshohara/3D-ResNets-PyTorch (``conv1``, ``bn1``,
``layerK.i.conv1..3``, ``layerK.i.downsample.0/1``, ``fc``); the released ``resnext-101-kinetics.pth``
was saved from a DataParallel wrapper, so its keys carry a ``module.`` prefix that the loader strips.
Configuration of that release: cardinality 32, shortcut type B (1x1x1 conv + BN projection),
bottleneck expansion 2, layers (3, 4, 23, 3), 16 frames of 112x112, 400 Kinetics classes.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 2048


class ResNeXtBottleneck(nn.Module):
    """1x1x1 -> grouped 3x3x3 (carries the stride) -> 1x1x1, residual add, ReLU."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, cardinality: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        mid = cardinality * (planes // 32)
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNeXt3D(nn.Module):
    """Shortcut-B 3D ResNeXt; ``features`` is the 2048-d global average before ``fc``."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 23, 3), cardinality: int = 32,
                 num_classes: int = 400) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(128, layers[0], cardinality, stride=1)
        self.layer2 = self._make_layer(256, layers[1], cardinality, stride=2)
        self.layer3 = self._make_layer(512, layers[2], cardinality, stride=2)
        self.layer4 = self._make_layer(1024, layers[3], cardinality, stride=2)
        self.fc = nn.Linear(cardinality * 32 * ResNeXtBottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, cardinality: int, stride: int) -> nn.Sequential:
        out_planes = planes * ResNeXtBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_planes),
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, cardinality, stride, downsample)]
        self.inplanes = out_planes
        layers += [ResNeXtBottleneck(out_planes, planes, cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) mean-subtracted [0, 255] RGB -> (N, 2048).

        Upstream pools with a fixed AvgPool3d((ceil(T/16), ceil(S/32), ceil(S/32))), which is the
        global mean at the release's 16x112x112; a global mean keeps that and also works elsewhere.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def resnext101(num_classes: int = 400) -> ResNeXt3D:
    return ResNeXt3D((3, 4, 23, 3), cardinality=32, num_classes=num_classes)
