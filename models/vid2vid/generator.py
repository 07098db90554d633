"""The sequential generator F of Eq. 4 / Eq. 9, coarse-to-fine.

Per scale the network has
  * two encoders: the L+1 source frames (``src_down``) and the L previous outputs (``img_down``), summed;
  * the coarsest scale adds ``n_blocks - n_blocks//2`` residual blocks shared by both branches below;
  * branch ``bg`` -> hallucination H (H_B when the foreground prior is on);
  * branch ``flow`` -> W and M: one residual/upsampling trunk, two output layers (flow, soft mask);
  * branch ``fg`` -> H_F, its own encoder on the *source frames only*.
Finer scales (pix2pixHD local enhancers) encode their input to half resolution, add the coarser scale's
branch features and decode one level up; only the finest active scale applies its output layers.
Scale 0 is the coarsest; scale s has ngf // 2**s filters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import conv_block, init_weights, output_conv, res_stack, up_block
from .warp import warp


def _encoder(in_ch: int, ngf: int, n_down: int, norm: str) -> nn.Sequential:
    layers = [conv_block(in_ch, ngf, 7, 1, norm, reflect=True)]
    for i in range(n_down):
        layers.append(conv_block(ngf * 2**i, ngf * 2 ** (i + 1), 3, 2, norm))
    return nn.Sequential(*layers)


def _decoder(ngf: int, n_down: int, n_blocks: int, norm: str) -> nn.Sequential:
    """Residual blocks at ngf * 2**n_down, then n_down x2 upsamplings down to ngf channels."""
    layers: list[nn.Module] = [res_stack(ngf * 2**n_down, n_blocks, norm)]
    for i in range(n_down, 0, -1):
        layers.append(up_block(ngf * 2**i, ngf * 2 ** (i - 1), norm))
    return nn.Sequential(*layers)


class GeneratorScale(nn.Module):
    """One spatial scale; returns its branch features (and, on request, the output-layer results)."""

    def __init__(
        self,
        src_ch: int,
        img_ch: int,
        ngf: int,
        ngf_fg: int,
        n_down: int,
        shared_blocks: int,
        branch_blocks: int,
        fg_blocks: int,
        norm: str,
        use_flow: bool,
        use_fg: bool,
        flow_multiplier: float,
    ) -> None:
        super().__init__()
        self.flow_multiplier = flow_multiplier
        self.src_down = _encoder(src_ch, ngf, n_down, norm)
        self.img_down = _encoder(img_ch, ngf, n_down, norm) if img_ch > 0 else None
        self.shared = res_stack(ngf * 2**n_down, shared_blocks, norm)
        self.bg = _decoder(ngf, n_down, branch_blocks, norm)
        self.bg_out = output_conv(ngf, 3)
        self.flow = _decoder(ngf, n_down, branch_blocks, norm) if use_flow else None
        self.flow_out = output_conv(ngf, 2) if use_flow else None
        self.mask_out = output_conv(ngf, 1) if use_flow else None
        if use_fg:
            self.fg_down = _encoder(src_ch, ngf_fg, n_down, norm)
            self.fg = _decoder(ngf_fg, n_down, fg_blocks, norm)
            self.fg_out = output_conv(ngf_fg, 3)
        else:
            self.fg_down = self.fg = self.fg_out = None
        init_weights(self)
        if use_flow:  # start near the identity warp: small flows, mask 0.5
            nn.init.normal_(self.flow_out[1].weight, 0.0, 1e-3)

    def features(
        self, src: torch.Tensor, img: torch.Tensor | None, coarse: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        down = self.src_down(src)
        if self.img_down is not None and img is not None:
            down = down + self.img_down(img)
        down = self.shared(down)
        feats = {"bg": self.bg(down if coarse is None else down + coarse["bg"])}
        if self.flow is not None:
            feats["flow"] = self.flow(down if coarse is None else down + coarse["flow"])
        if self.fg is not None:
            fg_down = self.fg_down(src)
            feats["fg"] = self.fg(fg_down if coarse is None else fg_down + coarse["fg"])
        return feats

    def heads(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {"bg": torch.tanh(self.bg_out(feats["bg"]))}
        if self.flow is not None:
            out["flow"] = self.flow_out(feats["flow"]) * self.flow_multiplier
            out["mask"] = torch.sigmoid(self.mask_out(feats["flow"]))
        if self.fg is not None:
            out["fg"] = torch.tanh(self.fg_out(feats["fg"]))
        return out


class Vid2VidGenerator(nn.Module):
    """F(x~_{t-L}^{t-1}, s_{t-L}^t): one output frame from L+1 source frames and L previous outputs.

    ``forward`` returns a dict:
      image (B,3,H,W) the final frame x~_t; hallucinated: h~_t (Eq. 9's fg/bg composite, or H of Eq. 4);
      bg / fg: H_B and H_F; flow (B,2,H,W) in pixels (warps output t-1 onto frame t, see warp.py);
      mask (B,1,H,W) soft occlusion mask m~_t (1 = hallucinate); warped: w~_{t-1}(x~_{t-1});
      background_mask: m_B as used. Keys of disabled parts (ablations) are absent.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        g = config.generator
        self.config = config
        self.n_prev = g.n_prev
        self.n_scales = g.n_scales
        self.use_flow = g.use_flow_warping and g.n_prev > 0
        self.use_fg = g.use_fg_prior
        self.source_channels = config.input.source_channels
        feat_nc = config.multimodal.feat_nc if config.multimodal.enabled else 0
        self.feat_nc = feat_nc
        src_ch = (g.n_prev + 1) * self.source_channels + feat_nc
        img_ch = 3 * g.n_prev
        ngf_fg = g.ngf // 2 if g.n_downsampling > 2 else g.ngf
        if g.ngf % 2 ** (g.n_scales - 1) or ngf_fg % 2 ** (g.n_scales - 1):
            raise ValueError(f"ngf={g.ngf} must stay even across {g.n_scales} scales")
        scales = []
        for s in range(g.n_scales):
            coarsest = s == 0
            scales.append(
                GeneratorScale(
                    src_ch,
                    img_ch,
                    g.ngf // 2**s,
                    ngf_fg // 2**s,
                    n_down=g.n_downsampling if coarsest else 1,
                    shared_blocks=(g.n_blocks - g.n_blocks // 2) if coarsest else 0,
                    branch_blocks=(g.n_blocks // 2) if coarsest else g.n_blocks_local,
                    fg_blocks=g.n_blocks if coarsest else g.n_blocks_local,
                    norm=g.norm,
                    use_flow=self.use_flow,
                    use_fg=self.use_fg,
                    flow_multiplier=g.flow_multiplier * 2**s,
                )
            )
        self.scales = nn.ModuleList(scales)

    def forward(
        self,
        source: torch.Tensor,
        prev_images: torch.Tensor | None,
        background_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        n_scales: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """source (B, L+1, C, H, W) oldest first; prev_images (B, L, 3, H, W) oldest first (or None if
        L = 0); background_mask (B, 1, H, W), 1 = background; features (B, d, H, W) for multimodal
        synthesis; n_scales: how many scales (coarsest first) are active — H, W is the finest one's size.
        """
        active = self.n_scales if n_scales is None else n_scales
        if not 1 <= active <= self.n_scales:
            raise ValueError(f"n_scales must be in 1..{self.n_scales}, got {active}")
        b, _, _, h, w = source.shape
        src = source.reshape(b, -1, h, w)
        if self.feat_nc:
            if features is None:
                raise ValueError("this generator is multimodal: pass features (B, d, H, W)")
            src = torch.cat([src, features.to(src.dtype)], dim=1)
        img = None
        if self.n_prev > 0:
            if prev_images is None:
                raise ValueError(f"the generator needs {self.n_prev} previous frames")
            img = prev_images.reshape(b, -1, h, w)
        feats: dict[str, torch.Tensor] | None = None
        for s in range(active):
            factor = 2 ** (active - 1 - s)
            src_s = F.avg_pool2d(src, factor) if factor > 1 else src
            img_s = F.avg_pool2d(img, factor) if (img is not None and factor > 1) else img
            feats = self.scales[s].features(src_s, img_s, feats)
        assert feats is not None
        out = self.scales[active - 1].heads(feats)
        return compose(out, prev_images[:, -1] if prev_images is not None else None, background_mask)


def compose(
    parts: dict[str, torch.Tensor], prev_image: torch.Tensor | None, background_mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Eq. 9 (or Eq. 4 without ``fg``; plain H without ``flow``) from the output layers' results."""
    result = dict(parts)
    if "fg" in parts:
        if background_mask is None:
            raise ValueError("the foreground-background prior needs the background mask m_B")
        m_b = background_mask.to(parts["bg"].dtype)
        hallucinated = (1 - m_b) * parts["fg"] + m_b * parts["bg"]
        result["background_mask"] = m_b
    else:
        hallucinated = parts["bg"]
    result["hallucinated"] = hallucinated
    if "flow" in parts and prev_image is not None:
        warped = warp(prev_image, parts["flow"])
        mask = parts["mask"]
        result["warped"] = warped
        result["image"] = (1 - mask) * warped + mask * hallucinated
    else:
        result["image"] = hallucinated
    return result
