"""FlowNet2 (Ilg et al., CVPR 2017) in plain PyTorch, module for module as NVIDIA's flownet2-pytorch.

Submodule and parameter names match the official ``FlowNet2_checkpoint.pth.tar`` (``state_dict`` with
``flownetc.*``, ``flownets_1.*``, ``flownets_2.*``, ``flownets_d.*``, ``flownetfusion.*``), so that file
loads strictly. Correlation and warping are standard torch ops (correlation.py): no CUDA extension to
build, runs on CPU and any GPU. Inputs must be multiples of 64 in both sides (the backend resizes).
"""

from __future__ import annotations

import torch
from torch import nn

from models.preprocess.correlation import Correlation, channel_norm, resample2d


def conv(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, bias=True),
                         nn.LeakyReLU(0.1, inplace=True))


def i_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=True))


def deconv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=True), nn.LeakyReLU(0.1, inplace=True))


def predict_flow(c_in: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, 2, 3, 1, 1, bias=True)


def up_flow(bias: bool = True) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


class _Decoder(nn.Module):
    """The FlowNetS/C refinement: deconvs 5..2 with flow predictions 6..2 (flow2 is 1/4 resolution)."""

    def _init_decoder(self, up_bias: bool) -> None:
        self.deconv5, self.deconv4 = deconv(1024, 512), deconv(1026, 256)
        self.deconv3, self.deconv2 = deconv(770, 128), deconv(386, 64)
        self.predict_flow6, self.predict_flow5 = predict_flow(1024), predict_flow(1026)
        self.predict_flow4, self.predict_flow3, self.predict_flow2 = predict_flow(770), predict_flow(386), predict_flow(194)
        self.upsampled_flow6_to_5, self.upsampled_flow5_to_4 = up_flow(up_bias), up_flow(up_bias)
        self.upsampled_flow4_to_3, self.upsampled_flow3_to_2 = up_flow(up_bias), up_flow(up_bias)

    def _decode(self, conv2, conv3, conv4, conv5, conv6) -> torch.Tensor:  # noqa: ANN001
        flow6 = self.predict_flow6(conv6)
        concat5 = torch.cat((conv5, self.deconv5(conv6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(concat5)
        concat4 = torch.cat((conv4, self.deconv4(concat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(concat4)
        concat3 = torch.cat((conv3, self.deconv3(concat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(concat3)
        concat2 = torch.cat((conv2, self.deconv2(concat3), self.upsampled_flow3_to_2(flow3)), 1)
        return self.predict_flow2(concat2)


class FlowNetC(_Decoder):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3 = conv(3, 64, 7, 2), conv(64, 128, 5, 2), conv(128, 256, 5, 2)
        self.conv_redir = conv(256, 32, 1, 1)
        self.corr = Correlation(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2)
        self.corr_activation = nn.LeakyReLU(0.1, inplace=True)
        self.conv3_1 = conv(473, 256)
        self.conv4, self.conv4_1 = conv(256, 512, stride=2), conv(512, 512)
        self.conv5, self.conv5_1 = conv(512, 512, stride=2), conv(512, 512)
        self.conv6, self.conv6_1 = conv(512, 1024, stride=2), conv(1024, 1024)
        self._init_decoder(up_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a2 = self.conv2(self.conv1(x[:, :3]))
        a3 = self.conv3(a2)
        b3 = self.conv3(self.conv2(self.conv1(x[:, 3:])))
        corr = self.corr_activation(self.corr(a3, b3))
        c3 = self.conv3_1(torch.cat((self.conv_redir(a3), corr), 1))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode(a2, c3, c4, c5, c6)


class FlowNetS(_Decoder):
    def __init__(self, input_channels: int = 12) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv(input_channels, 64, 7, 2), conv(64, 128, 5, 2)
        self.conv3, self.conv3_1 = conv(128, 256, 5, 2), conv(256, 256)
        self.conv4, self.conv4_1 = conv(256, 512, stride=2), conv(512, 512)
        self.conv5, self.conv5_1 = conv(512, 512, stride=2), conv(512, 512)
        self.conv6, self.conv6_1 = conv(512, 1024, stride=2), conv(1024, 1024)
        self._init_decoder(up_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        return self._decode(c2, c3, c4, c5, self.conv6_1(self.conv6(c5)))


class FlowNetSD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv0, self.conv1, self.conv1_1 = conv(6, 64), conv(64, 64, stride=2), conv(64, 128)
        self.conv2, self.conv2_1 = conv(128, 128, stride=2), conv(128, 128)
        self.conv3, self.conv3_1 = conv(128, 256, stride=2), conv(256, 256)
        self.conv4, self.conv4_1 = conv(256, 512, stride=2), conv(512, 512)
        self.conv5, self.conv5_1 = conv(512, 512, stride=2), conv(512, 512)
        self.conv6, self.conv6_1 = conv(512, 1024, stride=2), conv(1024, 1024)
        self.deconv5, self.deconv4 = deconv(1024, 512), deconv(1026, 256)
        self.deconv3, self.deconv2 = deconv(770, 128), deconv(386, 64)
        self.inter_conv5, self.inter_conv4 = i_conv(1026, 512), i_conv(770, 256)
        self.inter_conv3, self.inter_conv2 = i_conv(386, 128), i_conv(194, 64)
        self.predict_flow6, self.predict_flow5 = predict_flow(1024), predict_flow(512)
        self.predict_flow4, self.predict_flow3, self.predict_flow2 = predict_flow(256), predict_flow(128), predict_flow(64)
        self.upsampled_flow6_to_5, self.upsampled_flow5_to_4 = up_flow(), up_flow()
        self.upsampled_flow4_to_3, self.upsampled_flow3_to_2 = up_flow(), up_flow()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.conv1_1(self.conv1(self.conv0(x)))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        flow6 = self.predict_flow6(c6)
        concat5 = torch.cat((c5, self.deconv5(c6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(self.inter_conv5(concat5))
        concat4 = torch.cat((c4, self.deconv4(concat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(self.inter_conv4(concat4))
        concat3 = torch.cat((c3, self.deconv3(concat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(self.inter_conv3(concat3))
        concat2 = torch.cat((c2, self.deconv2(concat3), self.upsampled_flow3_to_2(flow3)), 1)
        return self.predict_flow2(self.inter_conv2(concat2))


class FlowNetFusion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv0, self.conv1, self.conv1_1 = conv(11, 64), conv(64, 64, stride=2), conv(64, 128)
        self.conv2, self.conv2_1 = conv(128, 128, stride=2), conv(128, 128)
        self.deconv1, self.deconv0 = deconv(128, 32), deconv(162, 16)
        self.inter_conv1, self.inter_conv0 = i_conv(162, 32), i_conv(82, 16)
        self.predict_flow2, self.predict_flow1, self.predict_flow0 = predict_flow(128), predict_flow(32), predict_flow(16)
        self.upsampled_flow2_to_1, self.upsampled_flow1_to_0 = up_flow(), up_flow()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        c2 = self.conv2_1(self.conv2(c1))
        flow2 = self.predict_flow2(c2)
        concat1 = torch.cat((c1, self.deconv1(c2), self.upsampled_flow2_to_1(flow2)), 1)
        flow1 = self.predict_flow1(self.inter_conv1(concat1))
        concat0 = torch.cat((c0, self.deconv0(concat1), self.upsampled_flow1_to_0(flow1)), 1)
        return self.predict_flow0(self.inter_conv0(concat0))


class FlowNet2(nn.Module):
    """Full FlowNet2 stack (C → S → S, SD, fusion); ``forward`` takes B×3×2×H×W RGB in 0..rgb_max."""

    def __init__(self, rgb_max: float = 255.0, div_flow: float = 20.0) -> None:
        super().__init__()
        self.rgb_max, self.div_flow = rgb_max, div_flow
        self.flownetc = FlowNetC()
        self.flownets_1 = FlowNetS(12)
        self.flownets_2 = FlowNetS(12)
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()
        self.upsample_bilinear = nn.Upsample(scale_factor=4, mode="bilinear")
        self.upsample_nearest = nn.Upsample(scale_factor=4, mode="nearest")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.shape[-1] % 64 or inputs.shape[-2] % 64:
            raise ValueError(f"FlowNet2 needs sides that are multiples of 64, got {tuple(inputs.shape[-2:])}")
        rgb_mean = inputs.reshape(*inputs.shape[:2], -1).mean(-1)[..., None, None, None]
        x = (inputs - rgb_mean) / self.rgb_max
        x = torch.cat((x[:, :, 0], x[:, :, 1]), 1)
        img0, img1 = x[:, :3], x[:, 3:]

        def refine(stage: nn.Module, flow: torch.Tensor) -> torch.Tensor:
            warped = resample2d(img1, flow)
            concat = torch.cat((x, warped, flow / self.div_flow, channel_norm(img0 - warped)), 1)
            return stage(concat)

        flow_c = self.upsample_bilinear(self.flownetc(x) * self.div_flow)
        flow_s1 = self.upsample_bilinear(refine(self.flownets_1, flow_c) * self.div_flow)
        flow_s2 = self.upsample_nearest(refine(self.flownets_2, flow_s1) * self.div_flow)
        flow_sd = self.upsample_nearest(self.flownets_d(x) / self.div_flow)  # sic: as in the official code
        concat = torch.cat((img0, flow_sd, flow_s2, channel_norm(flow_sd), channel_norm(flow_s2),
                            channel_norm(img0 - resample2d(img1, flow_sd)),
                            channel_norm(img0 - resample2d(img1, flow_s2))), 1)
        return self.flownetfusion(concat)
