"""Plain-PyTorch training: recursive generation with truncated backprop, alternating G/D Adam updates.

``GeneratorSide`` (G + E) and ``Discriminators`` (D_I + D_V) are separate modules, each run exactly once
forward and once backward per update, so each can be wrapped by DistributedDataParallel on its own::

    trainer = Vid2VidTrainer(config)
    unused_g, unused_d = trainer.parameters_may_go_unused()  # coarser output layers; D_V scales without a window
    trainer.G = DDP(trainer.G, find_unused_parameters=unused_g)
    trainer.D = DDP(trainer.D, find_unused_parameters=unused_d)
    for epoch in ...: trainer.set_epoch(epoch); for batch in loader: losses = trainer.train_step(batch)
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from models.weights import WeightSpec

from .batch import (Batch, class_labels, encode_source, frame_background_mask, instance_ids, reference_backward_flows,
                    validate_batch)
from .config import ModelConfig
from .discriminators import Discriminators
from .encoder import FeatureEncoder
from .generator import ScaleHistory, Vid2VidGenerator
from .losses import VGGLoss, feature_matching_loss, flow_loss, lsgan_loss, masked_l1, split_batch
from .schedule import ProgressiveSchedule, Stage
from .warp import compose_backward_flows, resize_flow, warp

CHECKPOINT_FORMAT = "vid2vid-trainer/1"


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP/DataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module


class GeneratorSide(nn.Module):
    """G (and E when multimodal); ``forward`` generates a chunk of N frames recursively.

    Gradients flow through the previous outputs inside the chunk; the caller detaches at chunk
    boundaries (truncated backprop through time).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_prev = config.generator.n_prev
        self.detach_previous = config.train.detach_previous
        self.generator = Vid2VidGenerator(config)
        self.encoder = FeatureEncoder(config) if config.multimodal.enabled else None

    def forward(
        self,
        sources: torch.Tensor,
        prev_images: torch.Tensor | list[torch.Tensor] | None,
        background_masks: torch.Tensor,
        real_images: torch.Tensor | None = None,
        semantic: torch.Tensor | None = None,
        instance: torch.Tensor | None = None,
        n_scales: int | None = None,
        detach_previous: bool = False,
        detach_coarse: bool = False,
    ) -> dict[str, torch.Tensor]:
        """sources (B, L+N, C, H, W); prev_images (B, L, 3, H, W), or one such tensor per active scale
        (coarsest first: each scale's own previous outputs, returned for the next chunk as ``previous_<s>``);
        background_masks (B, N, 1, H, W); real_images/semantic/instance for frames being generated (encoder E).
        ``detach_previous``: no gradient through the fed-back outputs; ``detach_coarse``: none into coarser
        scales. Returns (B, N, ...) tensors."""
        L = self.n_prev
        n = sources.shape[1] - L
        per_scale = isinstance(prev_images, (list, tuple))
        outputs: dict[str, list[torch.Tensor]] = defaultdict(list)
        prev = prev_images
        for i in range(n):
            features = None
            if self.encoder is not None:
                assert real_images is not None and instance is not None
                features = self.encoder(real_images[:, i], None if semantic is None else semantic[:, i], instance[:, i])
                outputs["features"].append(features)
            given = prev
            if detach_previous and prev is not None:
                given = [p.detach() for p in prev] if per_scale else prev.detach()  # type: ignore[union-attr]
            out = self.generator(sources[:, i : i + L + 1], given, background_masks[:, i], features, n_scales,
                                 return_pyramid=per_scale, detach_coarse=detach_coarse)
            frames = out.pop("pyramid", None)
            for key, value in out.items():
                outputs[key].append(value)
            if L > 0 and per_scale:
                prev = [torch.cat([p[:, 1:], f.unsqueeze(1)], dim=1) for p, f in zip(prev, frames, strict=True)]  # type: ignore[arg-type]
            elif L > 0:
                prev = torch.cat([prev[:, 1:], out["image"].unsqueeze(1)], dim=1)  # type: ignore[index]
        result = {key: torch.stack(values, dim=1) for key, values in outputs.items()}
        if per_scale and L > 0:
            result.update({f"previous_{s}": p.detach() for s, p in enumerate(prev)})  # type: ignore[arg-type]
        return result


class Vid2VidTrainer:
    """Owns G, D, the losses and both Adam optimisers; ``train_step(batch) -> {name: float}``."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        device: str | torch.device = "cpu",
        weights_dir: str | os.PathLike[str] | None = None,
        vgg_spec: str | WeightSpec = "vgg19",
        vgg_loss: VGGLoss | None = None,
    ) -> None:
        """``vgg_loss``: an already loaded VGGLoss to share (else one is loaded when ``loss.use_vgg``)."""
        self.config = config
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)
            self.G: nn.Module = GeneratorSide(config).to(self.device)
            self.D: nn.Module = Discriminators(config).to(self.device)
        self.vgg: VGGLoss | None = None
        if config.loss.use_vgg:
            self.vgg = (vgg_loss if vgg_loss is not None else VGGLoss(weights_dir, vgg_spec)).to(self.device)
        t = config.train
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
        self.schedule = ProgressiveSchedule(config)
        self.epoch = 0
        self.step = 0
        self.rng = torch.Generator().manual_seed(t.seed)  # window sampling (phi_I / phi_V crops)
        self.chunk_terms: list[dict[str, float]] = []  # the last step's loss terms per chunk, per D_V scale too

    # ------------------------------------------------------------------ schedule and data
    def set_epoch(self, epoch: int) -> Stage:
        was_finest_only = self.stage.finest_only
        self.epoch = epoch
        if was_finest_only and not self.stage.finest_only:  # NVIDIA's update_fixed_params: a fresh Adam for G
            self.opt_G.state.clear()
        t = self.config.train
        if t.lr_decay_epochs:  # NVIDIA's update_learning_rate at the end of every epoch past --niter
            constant = t.epochs - t.lr_decay_epochs
            lr = t.lr * (1 - (epoch - constant) / t.lr_decay_epochs) if epoch > constant else t.lr
            for group in (*self.opt_G.param_groups, *self.opt_D.param_groups):
                group["lr"] = lr
        return self.stage

    @property
    def stage(self) -> Stage:
        return self.schedule.at(self.epoch)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.rng)) if high > 1 else 0

    def prepare(self, batch: Batch, stage: Stage) -> Batch:
        """Validate, move to device, crop a random ``seq_len`` window and downsample to the stage's size."""
        validate_batch(batch, self.config)
        T = batch["image"].shape[1]
        length = min(T, stage.seq_len)
        if self.config.train.schedule == "official":  # whole chunks of generated frames (get_video_params)
            L, chunk = self.config.generator.n_prev, self.config.train.frames_per_step
            per_load = min(length - L, chunk)
            length = L + per_load * ((length - L) // per_load) if per_load > 0 else length
        start = self._randint(T - length + 1)
        h_target = self.config.input.height // stage.scale_factor
        factor = max(1, batch["image"].shape[-2] // h_target)
        out: Batch = {}
        for key, value in batch.items():
            if not torch.is_tensor(value):
                continue
            pair = key in ("flow", "flow_backward", "flow_confidence", "occlusion")
            value = value[:, start : start + length - 1] if pair else value[:, start : start + length]
            value = value.to(self.device)
            if factor > 1:
                lead = value.shape[:2]
                if not value.is_floating_point():  # label maps: nearest, never averaged
                    off = factor // 2
                    value = value[..., off::factor, off::factor]
                else:
                    flat = value.reshape(-1, *value.shape[2:]).to(torch.get_default_dtype())
                    flat = resize_flow(flat, factor) if key in ("flow", "flow_backward") else F.avg_pool2d(flat, factor)
                    value = flat.reshape(*lead, *flat.shape[1:])
            out[key] = value
        return out

    # ------------------------------------------------------------------ one update
    def train_step(self, batch: Batch) -> dict[str, float]:
        """Generate the batch's sequence recursively, updating G then D every ``frames_per_step`` frames."""
        cfg = self.config
        stage = self.stage
        batch = self.prepare(batch, stage)
        self.G.train()
        self.D.train()
        real = batch["image"].to(torch.get_default_dtype())
        B, T = real.shape[:2]
        L = cfg.generator.n_prev
        if T <= L:
            raise ValueError(f"sequences need more than L={L} frames, got {T}")
        semantic, instance = class_labels(cfg, batch), instance_ids(cfg, batch)
        source = encode_source(cfg, batch)
        bg = frame_background_mask(cfg, semantic, real)
        ref_flow, ref_conf = reference_backward_flows(batch)
        history: list[torch.Tensor] = [real[:, t] for t in range(L)]  # the first L frames are given
        t = cfg.train
        per_scale = t.previous_frames == "per_scale" and L > 0
        scale_prev: list[torch.Tensor] | None = None
        if per_scale:
            seeds = ScaleHistory(L, stage.n_scales)
            seeds.start(real[:, :L])
            scale_prev = seeds.previous()
        totals: dict[str, float] = defaultdict(float)
        self.chunk_terms = []
        chunks = 0
        for start in range(L, T, t.frames_per_step):
            n = min(t.frames_per_step, T - start)
            prev = scale_prev if per_scale else (torch.stack(history[-L:], dim=1) if L else None)
            out = self.G(
                source[:, start - L : start + n],
                prev,
                bg[:, start : start + n],
                real[:, start : start + n],
                None if semantic is None else semantic[:, start : start + n],
                None if instance is None else instance[:, start : start + n],
                stage.n_scales,
                t.detach_previous,
                stage.finest_only,
            )
            if per_scale:
                scale_prev = [out.pop(f"previous_{s}") for s in range(stage.n_scales)]
            fake = out["image"]
            windows = self._video_windows(start, n)
            terms: dict[str, float] = {}

            g_losses = self._generator_losses(out, real, source, history, start, n, windows, ref_flow, ref_conf, terms)
            self.opt_G.zero_grad(set_to_none=True)
            g_losses["G_total"].backward()
            self.opt_G.step()

            raw = out["hallucinated"].detach() if cfg.loss.raw_image_losses else None
            d_losses = self._discriminator_losses(fake.detach(), real, source, history, start, n, windows, ref_flow,
                                                  terms, raw)
            self.opt_D.zero_grad(set_to_none=True)
            d_losses["D_total"].backward()
            self.opt_D.step()

            history.extend(fake.detach().unbind(1))  # training sequences are short: keep them whole
            for key, value in {**g_losses, **d_losses}.items():
                totals[key] += float(value.detach())
                terms[key] = float(value.detach())
            self.chunk_terms.append(terms)
            totals["L1"] += float((fake.detach() - real[:, start : start + n]).abs().mean())
            chunks += 1
        self.step += 1
        result = {key: value / chunks for key, value in totals.items()}
        result.update(seq_len=float(T), n_scales=float(stage.n_scales))
        return result

    # ------------------------------------------------------------------ helpers
    def parameters_may_go_unused(self) -> tuple[bool, bool]:
        """(G, D): whether some update can leave parameters of G / of D without a gradient.

        DistributedDataParallel must then look for them (``find_unused_parameters``); where none can be
        unused that search only costs a graph walk per update and prints DDP's warning. G: the coarser
        scales' output layers of a multi-scale generator. D: a temporal scale whose frame span does not fit
        some chunk of some sequence length the schedule can give (its D_V then sits out that update).
        """
        cfg = self.config
        generator = cfg.generator.n_scales > 1
        discriminator = False
        if cfg.uses_video_discriminator:
            L, chunk = cfg.generator.n_prev, cfg.train.frames_per_step
            for length in range(L + 1, cfg.train.max_seq_len + 1):
                for start in range(L, length, chunk):
                    windows = self._video_windows(start, min(chunk, length - start), sample=False)
                    discriminator = discriminator or any(w is None for w in windows)
        return generator, discriminator

    def _video_windows(self, start: int, n: int, sample: bool = True) -> list[list[list[int]] | None]:
        """phi_V: per temporal scale, the windows (frame indices, oldest first) D_V sees in this chunk: one
        random window ending in the chunk ("random"), or NVIDIA's: windows ending at the chunk's last frame and
        every K-th frame before it inside the chunk, made of generated frames only ("official").
        ``sample=False`` takes the first candidate and leaves the window sampler's state untouched."""
        if not self.config.uses_video_discriminator:
            return []
        video = unwrap(self.D).video
        official = self.config.discriminator.video_windows == "official"
        first = self.config.generator.n_prev if official else 0
        windows: list[list[list[int]] | None] = []
        for s in range(len(video.scales)):
            if official:
                ends = [start + n - 1 - k for k in range(0, n, video.n_frames)]
                found = [video.indices(e, s) for e in ends if video.indices(e, s)[0] >= first]
                windows.append(found or None)
                continue
            ends = [e for e in range(start, start + n) if video.indices(e, s)[0] >= first]
            pick = self._randint(len(ends)) if sample else 0
            windows.append([video.indices(ends[pick], s)] if ends else None)
        return windows

    def _frame(self, t: int, history: list[torch.Tensor], fake: torch.Tensor, start: int) -> torch.Tensor:
        """Frame t of the fake sequence: this chunk's output (with grad) or an earlier, detached one."""
        return fake[:, t - start] if t >= start else history[t]

    def _window_flows(self, idx: list[int], ref_flow: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Backward flows between consecutive window frames (composed over skipped frames), concatenated."""
        flows = []
        for a, b in zip(idx[:-1], idx[1:]):
            if ref_flow is None:
                flows.append(torch.zeros_like(like[:, :2]))
            else:
                flows.append(compose_backward_flows([ref_flow[:, j - 1] for j in range(b, a, -1)]))
        scale = self.config.discriminator.video_flow_scale
        return torch.cat(flows, dim=1) * scale if scale != 1.0 else torch.cat(flows, dim=1)

    def _video_inputs(
        self, windows, real, fake, history, start, ref_flow
    ) -> list[torch.Tensor | None]:
        """Per temporal scale: cat([real windows, fake windows]) along the batch, or None."""
        inputs: list[torch.Tensor | None] = []
        for group in windows:
            if group is None:
                inputs.append(None)
                continue
            reals, fakes = [], []
            for idx in group:
                flows = self._window_flows(idx, ref_flow, real[:, 0])
                reals.append(torch.cat([real[:, t] for t in idx] + [flows], dim=1))
                fakes.append(torch.cat([self._frame(t, history, fake, start) for t in idx] + [flows], dim=1))
            inputs.append(torch.cat(reals + fakes, dim=0))
        return inputs

    def _image_input(self, real, fake, source, start, n, raw=None) -> torch.Tensor:
        src = source[:, start : start + n].flatten(0, 1)
        parts = [real[:, start : start + n], fake] + ([raw] if raw is not None else [])
        return torch.cat([torch.cat([x.flatten(0, 1), src], dim=1) for x in parts], dim=0)

    def _parts(self, image_parts: int) -> dict[str, int]:
        separate = self.config.discriminator.real_fake_batches == "separate"
        return {"image_parts": image_parts if separate else 1, "video_parts": 2 if separate else 1}

    def _generator_losses(self, out, real, source, history, start, n, windows, ref_flow, ref_conf,
                          terms: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
        cfg = self.config
        lw = cfg.loss
        fake = out["image"]
        raw = out["hallucinated"] if lw.raw_image_losses else None
        image_in = self._image_input(real, fake, source, start, n, raw)
        video_in = self._video_inputs(windows, real, fake, history, start, ref_flow) if windows else None
        n_parts = 3 if raw is not None else 2
        preds = self.D(image_in, video_in, **self._parts(n_parts))
        chunked = [[[f.chunk(n_parts)[p] for f in scale] for scale in preds["image"]] for p in range(n_parts)]
        real_i, fakes_i = chunked[0], chunked[1:]
        losses = {"G_GAN_I": sum(lsgan_loss(f, True) for f in fakes_i),
                  "G_FM_I": sum(feature_matching_loss(f, real_i) for f in fakes_i) * lw.lambda_feat}
        zero = fake.new_zeros(())
        losses["G_GAN_V"], losses["G_FM_V"] = zero, zero
        for s, pred in enumerate(preds.get("video", []) or []):
            if pred is None:
                continue
            real_v, fake_v = split_batch(pred, pred[0][0].shape[0] // 2)
            gan, fm = lsgan_loss(fake_v, True) * lw.lambda_temporal_gan, feature_matching_loss(fake_v, real_v) * lw.lambda_feat
            losses["G_GAN_V"] = losses["G_GAN_V"] + gan
            losses["G_FM_V"] = losses["G_FM_V"] + fm
            if terms is not None:
                terms[f"G_GAN_V{s}"], terms[f"G_FM_V{s}"] = float(gan.detach()), float(fm.detach())
        real_chunk = real[:, start : start + n]
        losses["G_VGG"] = zero
        if self.vgg is not None:
            for x in [fake] + ([raw] if raw is not None else []):
                losses["G_VGG"] = losses["G_VGG"] + self.vgg(x.flatten(0, 1), real_chunk.flatten(0, 1), lw.vgg_input) * lw.lambda_vgg
        losses["G_flow_epe"], losses["G_flow_warp"], losses["G_mask"], losses["G_fake_warp"] = zero, zero, zero, zero
        ts = range(start, start + n)
        ref = None if ref_flow is None else torch.stack([ref_flow[:, t - 1] for t in ts], 1).flatten(0, 1)
        conf = None if ref_conf is None else torch.stack([ref_conf[:, t - 1] for t in ts], 1).flatten(0, 1)
        if "flow" in out:
            prev_real = torch.stack([real[:, t - 1] for t in ts], 1).flatten(0, 1)
            fl = flow_loss(out["flow"].flatten(0, 1), prev_real, real_chunk.flatten(0, 1), ref, conf, lw.masked_l1)
            losses["G_flow_warp"] = fl["warp"] * lw.lambda_flow
            if "epe" in fl:
                per_scale = 2 ** (cfg.generator.n_scales - 1) if lw.flow_epe_per_scale else 1
                losses["G_flow_epe"] = fl["epe"] * lw.lambda_flow / per_scale
            if lw.lambda_mask:
                losses["G_mask"] = out["mask"].mean() * lw.lambda_mask
        if lw.lambda_fake_warp and ref is not None:  # the previous output warped by the reference flow
            first = history[start - 1]
            if lw.fake_warp_first == "chunk_last" and start > cfg.generator.n_prev:
                first = fake[:, -1]
            prev_fake = torch.stack([first.detach(), *fake[:, :-1].detach().unbind(1)], 1).flatten(0, 1)
            target = warp(prev_fake, ref).detach()
            losses["G_fake_warp"] = masked_l1(fake.flatten(0, 1), target, conf, lw.masked_l1) * lw.lambda_fake_warp
        losses["G_total"] = sum(losses.values())  # type: ignore[assignment]
        return losses

    def _discriminator_losses(self, fake, real, source, history, start, n, windows, ref_flow,
                              terms: dict[str, float] | None = None, raw=None) -> dict[str, torch.Tensor]:
        image_in = self._image_input(real, fake, source, start, n, raw)
        video_in = self._video_inputs(windows, real, fake, history, start, ref_flow) if windows else None
        n_parts = 3 if raw is not None else 2
        preds = self.D(image_in, video_in, **self._parts(n_parts))
        chunked = [[[f.chunk(n_parts)[p] for f in scale] for scale in preds["image"]] for p in range(n_parts)]
        # NVIDIA's code scores the real frames once per fake kind (frame, and hallucinated frame): twice with raw
        losses = {"D_real_I": lsgan_loss(chunked[0], True) * 0.5 * (n_parts - 1),
                  "D_fake_I": sum(lsgan_loss(f, False) for f in chunked[1:]) * 0.5}
        zero = fake.new_zeros(())
        losses["D_real_V"], losses["D_fake_V"] = zero, zero
        for s, pred in enumerate(preds.get("video", []) or []):
            if pred is None:
                continue
            real_v, fake_v = split_batch(pred, pred[0][0].shape[0] // 2)
            d_real, d_fake = lsgan_loss(real_v, True) * 0.5, lsgan_loss(fake_v, False) * 0.5
            losses["D_real_V"] = losses["D_real_V"] + d_real
            losses["D_fake_V"] = losses["D_fake_V"] + d_fake
            if terms is not None:
                terms[f"D_real_V{s}"], terms[f"D_fake_V{s}"] = float(d_real.detach()), float(d_fake.detach())
        losses["D_total"] = sum(losses.values())  # type: ignore[assignment]
        return losses

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        """Everything needed to resume, loadable with ``torch.load(weights_only=True)``."""
        G, D = unwrap(self.G), unwrap(self.D)
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "generator": G.generator.state_dict(),
            "encoder": G.encoder.state_dict() if G.encoder is not None else None,
            "discriminators": D.state_dict(),
            "optimizer_G": self.opt_G.state_dict(),
            "optimizer_D": self.opt_D.state_dict(),
            "rng": self.rng.get_state(),
        }

    def load_weights(self, state: dict) -> list[str]:
        """Start from a model file's weights (``--init-from``): G, and E and D where the file has them; the
        optimisers, step, epoch and sampling RNG stay fresh. Returns the parts loaded."""
        G, D = unwrap(self.G), unwrap(self.D)
        G.generator.load_state_dict(state["generator"])
        parts = ["generator"]
        if G.encoder is not None and state.get("encoder") is not None:
            G.encoder.load_state_dict(state["encoder"])
            parts.append("encoder")
        if state.get("discriminators") is not None:
            D.load_state_dict(state["discriminators"])
            parts.append("discriminators")
        return parts

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a vid2vid trainer checkpoint (format {state.get('format')!r})")
        if ModelConfig.model_validate(state["config"]) != self.config:
            raise ValueError("checkpoint was written for a different model config")
        G, D = unwrap(self.G), unwrap(self.D)
        G.generator.load_state_dict(state["generator"])
        if G.encoder is not None:
            G.encoder.load_state_dict(state["encoder"])
        D.load_state_dict(state["discriminators"])
        self.opt_G.load_state_dict(state["optimizer_G"])
        self.opt_D.load_state_dict(state["optimizer_D"])
        self.rng.set_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
