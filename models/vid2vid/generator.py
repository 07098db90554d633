"""The sequential generator F of Eq. 4 / Eq. 9, coarse-to-fine, laid out like NVIDIA's released models.

Per scale the network has
  * two encoders, summed: the L+1 source frames (``src_down``) and the L previous outputs (``img_down``);
    at the coarsest scale each ends in its own ``n_blocks - n_blocks//2`` residual blocks;
  * branch ``bg`` -> hallucination H (H_B when the foreground prior is on);
  * branch ``flow`` -> W and M: one residual/upsampling trunk, two output layers (flow, soft mask);
  * branch ``fg`` -> H_F, its own encoder on the *source frames only*.
The coarsest scale runs ``n_blocks//2`` residual blocks per branch (``*_res``, ``n_blocks`` for fg) then
upsamples (``*_up``); finer scales (pix2pixHD local enhancers) encode their input to half resolution, add
the coarser scale's branch features and run ``n_blocks_local`` blocks + one upsampling (``*_up``).
Scale 0 is the coarsest; scale s has ngf // 2**s filters. Every module is a flat ``nn.Sequential`` in the
official layer order, so a released state dict maps onto ours by renaming prefixes (official_import.py).

Inputs are brought to each scale with the 3x3 stride-2 average-pool pyramid. Every active scale composes
its own frame, and a caller that keeps per-scale previous outputs (``return_pyramid`` + a list of
``prev_images``) reproduces the official recurrence exactly; a single finest-resolution tensor of previous
frames is pooled instead (the official first frame, and our trainer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import ModelConfig
from .layers import BatchNorm2d, conv_layers, init_weights, output_conv, pyramid, res_layers, up_layers
from .warp import warp


def _encoder(in_ch: int, ngf: int, n_down: int, n_blocks: int, norm: str) -> nn.Sequential:
    """7x7 stem, n_down stride-2 convs, then n_blocks residual blocks: one flat sequence."""
    layers = conv_layers(in_ch, ngf, 7, 1, norm, reflect=True)
    for i in range(n_down):
        layers += conv_layers(ngf * 2**i, ngf * 2 ** (i + 1), 3, 2, norm)
    return nn.Sequential(*layers, *res_layers(ngf * 2**n_down, n_blocks, norm))


def _upsampler(ngf: int, n_down: int, n_blocks: int, norm: str) -> nn.Sequential:
    """n_blocks residual blocks at ngf * 2**n_down, then n_down x2 upsamplings down to ngf channels."""
    layers = res_layers(ngf * 2**n_down, n_blocks, norm)
    for i in range(n_down, 0, -1):
        layers += up_layers(ngf * 2**i, ngf * 2 ** (i - 1), norm)
    return nn.Sequential(*layers)


def _res(channels: int, n_blocks: int, norm: str) -> nn.Sequential:
    return nn.Sequential(*res_layers(channels, n_blocks, norm))


class GeneratorScale(nn.Module):
    """One spatial scale: branch features from its inputs (plus the coarser scale's), and output layers."""

    def __init__(
        self,
        src_ch: int,
        img_ch: int,
        ngf: int,
        ngf_fg: int,
        n_down: int,
        coarsest: bool,
        n_blocks: int,
        n_blocks_local: int,
        norm: str,
        use_flow: bool,
        use_fg: bool,
        flow_multiplier: float,
        outputs: bool = True,
    ) -> None:
        super().__init__()
        self.coarsest = coarsest
        self.flow_multiplier = flow_multiplier
        top = ngf * 2**n_down
        enc_blocks = n_blocks - n_blocks // 2 if coarsest else 0
        up_blocks = 0 if coarsest else n_blocks_local
        self.src_down = _encoder(src_ch, ngf, n_down, enc_blocks, norm)
        self.img_down = _encoder(img_ch, ngf, n_down, enc_blocks, norm) if img_ch > 0 else None
        self.bg_res = _res(top, n_blocks // 2, norm) if coarsest else None
        self.bg_up = _upsampler(ngf, n_down, up_blocks, norm)
        self.outputs = outputs
        self.bg_out = output_conv(ngf, 3) if outputs else None
        self.flow_res = _res(top, n_blocks // 2, norm) if coarsest and use_flow else None
        self.flow_up = _upsampler(ngf, n_down, up_blocks, norm) if use_flow else None
        self.flow_out = output_conv(ngf, 2) if use_flow and outputs else None
        self.mask_out = output_conv(ngf, 1) if use_flow and outputs else None
        if use_fg:
            self.fg_down = _encoder(src_ch, ngf_fg, n_down, 0, norm)
            self.fg_res = _res(ngf_fg * 2**n_down, n_blocks, norm) if coarsest else None
            self.fg_up = _upsampler(ngf_fg, n_down, up_blocks, norm)
            self.fg_out = output_conv(ngf_fg, 3) if outputs else None
        else:
            self.fg_down = self.fg_res = self.fg_up = self.fg_out = None
        init_weights(self)
        if use_flow and outputs:  # start near the identity warp: small flows, mask 0.5
            nn.init.normal_(self.flow_out[1].weight, 0.0, 1e-3)

    def features(
        self, src: torch.Tensor, img: torch.Tensor | None, coarse: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        down = self.src_down(src)
        if self.img_down is not None and img is not None:
            down = down + self.img_down(img)
        if self.coarsest:
            feats = {"bg": self.bg_up(self.bg_res(down))}
            if self.flow_up is not None:
                feats["flow"] = self.flow_up(self.flow_res(down))
            if self.fg_up is not None:
                feats["fg"] = self.fg_up(self.fg_res(self.fg_down(src)))
            return feats
        if coarse is None:
            raise ValueError("a finer scale needs the coarser scale's features")
        feats = {"bg": self.bg_up(down + coarse["bg"])}
        if self.flow_up is not None:
            feats["flow"] = self.flow_up(down + coarse["flow"])
        if self.fg_up is not None:
            feats["fg"] = self.fg_up(self.fg_down(src) + coarse["fg"])
        return feats

    def heads(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.outputs:
            raise ValueError("this scale has no output layers (generator.coarse_outputs: false): run every scale")
        out = {"bg": torch.tanh(self.bg_out(feats["bg"]))}
        if self.flow_up is not None:
            out["flow"] = self.flow_out(feats["flow"]) * self.flow_multiplier
            out["mask"] = torch.sigmoid(self.mask_out(feats["flow"]))
        if self.fg_up is not None:
            out["fg"] = torch.tanh(self.fg_out(feats["fg"]))
        return out


class Vid2VidGenerator(nn.Module):
    """F(x~_{t-L}^{t-1}, s_{t-L}^t): one output frame from L+1 source frames and L previous outputs.

    ``forward`` returns a dict:
      image (B,3,H,W) the final frame x~_t; hallucinated: h~_t (fg/bg composite, or H of Eq. 4);
      bg / fg: H_B and H_F; flow (B,2,H,W) in pixels (warps output t-1 onto frame t, see warp.py);
      mask (B,1,H,W) soft occlusion mask m~_t (1 = hallucinate); warped: w~_{t-1}(x~_{t-1});
      background_mask: m_B as used; pyramid (with ``return_pyramid``): every active scale's final frame,
      coarsest first (the last is ``image``). Keys of disabled parts (ablations) are absent.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        g = config.generator
        self.config = config
        self.n_prev = g.n_prev
        self.n_scales = g.n_scales
        self.use_flow = g.use_flow_warping and g.n_prev > 0
        self.use_fg = g.use_fg_prior
        self.composition = g.composition
        self.source_channels = config.input.source_channels
        feat_nc = config.multimodal.feat_nc if config.multimodal.enabled else 0
        self.feat_nc = feat_nc
        src_ch = (g.n_prev + 1) * self.source_channels + feat_nc
        img_ch = 3 * g.n_prev
        ngf_fg = g.ngf // 2 if g.n_downsampling > 2 else g.ngf
        if g.ngf % 2 ** (g.n_scales - 1) or ngf_fg % 2 ** (g.n_scales - 1):
            raise ValueError(f"ngf={g.ngf} must stay even across {g.n_scales} scales")
        self.scales = nn.ModuleList(
            GeneratorScale(
                src_ch,
                img_ch,
                g.ngf // 2**s,
                ngf_fg // 2**s,
                n_down=g.n_downsampling if s == 0 else 1,
                coarsest=s == 0,
                n_blocks=g.n_blocks,
                n_blocks_local=g.n_blocks_local,
                norm=g.norm,
                use_flow=self.use_flow,
                use_fg=self.use_fg,
                flow_multiplier=g.flow_multiplier * 2**s,
                outputs=g.coarse_outputs or s == g.n_scales - 1,
            )
            for s in range(g.n_scales)
        )
        for m in self.modules():
            if isinstance(m, BatchNorm2d):
                m.batch_stats_in_eval = g.test_norm_stats == "batch"

    def forward(
        self,
        source: torch.Tensor,
        prev_images: torch.Tensor | Sequence[torch.Tensor] | None,
        background_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        n_scales: int | None = None,
        *,
        raw_only: bool = False,
        return_pyramid: bool = False,
        detach_coarse: bool = False,
    ) -> dict[str, torch.Tensor]:
        """source (B, L+1, C, H, W) oldest first; prev_images (B, L, 3, H, W) oldest first at the finest
        size (pooled for coarser scales), or one such tensor per active scale, coarsest first (each scale's
        own previous outputs), or None if L = 0; background_mask (B, 1, H, W), 1 = background; features
        (B, d, H, W) for multimodal synthesis; n_scales: how many scales (coarsest first) are active —
        H, W is the finest one's size. ``raw_only``: no warping (the official first frame generated from
        zero previous frames); ``return_pyramid``: also compose every coarser scale's frame;
        ``detach_coarse``: no gradient reaches the coarser scales (NVIDIA's ``--niter_fix_global`` epochs).
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
        srcs = pyramid(src, active)[::-1]  # coarsest first
        prevs: list[torch.Tensor | None] = [None] * active
        if self.n_prev > 0:
            if prev_images is None:
                raise ValueError(f"the generator needs {self.n_prev} previous frames")
            if isinstance(prev_images, torch.Tensor):
                prevs = list(pyramid(prev_images.reshape(b, -1, h, w), active)[::-1])
            else:
                if len(prev_images) != active:
                    raise ValueError(f"{len(prev_images)} per-scale previous frames for {active} active scales")
                prevs = [p.reshape(b, -1, *p.shape[-2:]) for p in prev_images]
        # the foreground mask is pooled (as the official code pools its one-hot labels), then m_B = 1 - m_F
        masks: list[torch.Tensor | None] = (
            list(pyramid(1 - background_mask, active)[::-1]) if background_mask is not None else [None] * active
        )
        feats: dict[str, torch.Tensor] | None = None
        frames: list[torch.Tensor] = []
        out: dict[str, torch.Tensor] = {}
        for s in range(active):
            feats = self.scales[s].features(srcs[s], prevs[s], feats)
            if return_pyramid or s == active - 1:
                last = prevs[s][:, -3:] if prevs[s] is not None else None
                m_f = masks[s]
                out = compose(self.scales[s].heads(feats), last, None if m_f is None else 1 - m_f, self.composition,
                              raw_only, foreground_mask=m_f)
                frames.append(out["image"].detach() if detach_coarse and s < active - 1 else out["image"])
            if detach_coarse and s < active - 1:
                feats = {key: value.detach() for key, value in feats.items()}
        if return_pyramid:
            out["pyramid"] = frames  # type: ignore[assignment]
        return out


class ScaleHistory:
    """The last L outputs of every active scale, coarsest first: the state of the official recurrence.

    ``start`` seeds it from L given finest-size frames (real frames, a single-frame generator's output,
    or zeros), pooled down the pyramid as the official code does; ``push`` appends one generated frame per
    scale (the generator's ``pyramid`` output); ``previous`` is what the generator takes as prev_images.
    """

    def __init__(self, n_prev: int, n_scales: int) -> None:
        self.n_prev = n_prev
        self.n_scales = n_scales
        self.frames: list[list[torch.Tensor]] = [[] for _ in range(n_scales)]

    def start(self, frames: torch.Tensor) -> None:
        """frames (B, L, 3, H, W), oldest first, at the finest active size."""
        b, n, c, h, w = frames.shape
        levels = pyramid(frames.reshape(b, n * c, h, w), self.n_scales)[::-1]
        self.frames = [list(level.view(b, n, c, *level.shape[-2:]).unbind(1))[-self.n_prev :] for level in levels]

    def push(self, frames: Sequence[torch.Tensor]) -> None:
        for history, frame in zip(self.frames, frames, strict=True):
            history.append(frame)
            del history[: -self.n_prev]

    def previous(self) -> list[torch.Tensor]:
        return [torch.stack(history, 1) for history in self.frames]


def compose(
    parts: dict[str, torch.Tensor],
    prev_image: torch.Tensor | None,
    background_mask: torch.Tensor | None,
    composition: str = "paper",
    raw_only: bool = False,
    foreground_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The final frame from the output layers' results: Eq. 9 ("paper") or the released code's form
    ("official", foreground never warped); Eq. 4 without ``fg``; plain H without ``flow`` or with ``raw_only``."""
    if composition not in ("paper", "official"):
        raise ValueError(f"composition must be 'paper' or 'official', got {composition!r}")
    result = dict(parts)
    m_b = None
    if "fg" in parts:
        if background_mask is None:
            raise ValueError("the foreground-background prior needs the background mask m_B")
        m_b = background_mask.to(parts["bg"].dtype)
        if composition == "official":  # with the pooled m_F itself: 1 - (1 - m_F) differs from m_F in the last bit
            m_f = (1 - m_b) if foreground_mask is None else foreground_mask.to(m_b.dtype)
            hallucinated = parts["fg"] * m_f + parts["bg"] * (1 - m_f)
        else:
            hallucinated = (1 - m_b) * parts["fg"] + m_b * parts["bg"]
        result["background_mask"] = m_b
    else:
        hallucinated = parts["bg"]
    result["hallucinated"] = hallucinated
    if "flow" in parts and prev_image is not None and not raw_only:
        warped = warp(prev_image, parts["flow"])
        mask = parts["mask"]
        result["warped"] = warped
        if composition == "official" and m_b is not None:  # in the released code's order of operations
            m_f = (1 - m_b) if foreground_mask is None else foreground_mask.to(m_b.dtype)
            result["image"] = parts["fg"] * m_f + (parts["bg"] * mask + warped * (1 - mask)) * (1 - m_f)
        else:
            result["image"] = (1 - mask) * warped + mask * hallucinated
    else:
        result["image"] = hallucinated
    return result
