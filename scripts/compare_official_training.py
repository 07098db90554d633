"""Our training step vs NVIDIA's train.py on the same batch, term by term, and the progressive schedule.

    git clone https://github.com/NVIDIA/vid2vid /tmp/vid2vid   # 2e6d137; read and run from there, never copied here
    python scripts/compare_official_training.py --official-repo /tmp/vid2vid [--dtype float32 float64]
        [--scales 1 2] [--fg on off] [--pin tests/models/data/official_training_terms.json]

Per case (spatial scales x fg prior x dtype) a subprocess builds NVIDIA's ``Vid2VidModelG`` / ``Vid2VidModelD``
(train mode) with their own random initialisation and saves them as their training does (``latest_net_G<s>``,
``_net_D``, ``_net_D_T<s>``, ``opt.txt``); ``import_official`` brings those files into our model file, which our
``Vid2VidTrainer`` (with the official recipe options) starts from. Both sides then train on the same two
sequences (35 label ids, instance maps, real frames, one reference flow and confidence fed to both in place of
their FlowNet2, one stand-in VGG19 for both), their side in their train.py order: chunks of n_frames_load
frames, G generated with the previous chunk's last outputs, ``modelD(0, ...)``, ``get_all_skipped_frames``,
``modelD(s+1, ...)`` per temporal scale, ``get_losses``, then G's, D's and every D_T's Adam step. Every loss
term is compared by name at every update, and every weight after updates 1 and 3.

Their code targets torch 0.4 on CUDA: while it runs ``.cuda()`` is the identity, ``torch.cuda.FloatTensor``
makes CPU tensors of the default dtype (float64 runs), ``grid_sample`` keeps torch 0.4's ``align_corners=True``;
their ``Vgg19`` gets the stand-in from ``torchvision.models.vgg19``. Nothing of their checkout is changed.

The schedule check runs their ``update_models`` (with recording stand-ins for G and D), their dataset's
``update_training_batch`` and ``get_video_params`` for the options of scripts/street/train_2048.sh and
train_1024.sh (30-frame Cityscapes sequences) and prints, per epoch, frames per sequence, whether the coarse
scales train and the learning rate, beside our ``ProgressiveSchedule`` with ``train.schedule: official``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

H, W, T = 32, 64, 10  # frames per sequence: 2 given + 8 generated, in chunks of 4
PIN_SIZE = (16, 32)  # the suite's pinned case
CHUNK, N_SEQ, CHECKED = 4, 2, (1, 3)
ARCH = {"ngf": 16, "n_downsample_G": 2, "n_blocks": 3, "n_blocks_local": 1, "ndf": 16, "num_D": 2, "lr": 0.0002}
#: our term -> (their term, factor on ours): they report D_real / D_fake before the 0.5 of get_losses
TERMS = {"G_VGG": ("G_VGG", 1), "G_GAN_I": ("G_GAN", 1), "G_FM_I": ("G_GAN_Feat", 1), "D_real_I": ("D_real", 2),
         "D_fake_I": ("D_fake", 2), "G_fake_warp": ("G_Warp", 1), "G_flow_epe": ("F_Flow", 1),
         "G_flow_warp": ("F_Warp", 1), "G_mask": ("W", 1)}
TERMS_T = {"G_GAN_V": ("G_T_GAN", 1), "G_FM_V": ("G_T_GAN_Feat", 1), "D_real_V": ("D_T_real", 2),
           "D_fake_V": ("D_T_fake", 2)}
REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ inputs


def make_inputs(work: Path) -> None:
    """Two sequences (float64, cast by each side), the per-pair reference flows, a stand-in VGG19."""
    import torch
    import torchvision

    sys.path.insert(0, str(REPO_ROOT))
    from models.vid2vid.warp import compose_backward_flows

    g = torch.Generator().manual_seed(1)
    sequences = []
    for seq in range(N_SEQ):
        shift = 2 + seq
        texture = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W + shift * T + 8, generator=g, dtype=torch.float64) * 2 - 1, 3, 1, 1)
        images = torch.stack([texture[..., shift * t: shift * t + W] for t in range(T)], 1)
        semantic = torch.full((1, T, H, W), 7, dtype=torch.long)  # road; sky on top, a building, a moving car
        semantic[:, :, : H // 4] = 23
        semantic[:, :, H // 4: H // 2, W * 5 // 8: W * 7 // 8] = 11
        instance = semantic.clone()
        for t in range(T):
            x, y = W // 10 + (3 + seq) * t * W // 64, slice(H * 9 // 16, H * 7 // 8)
            semantic[:, t, y, x: x + W * 3 // 16], instance[:, t, y, x: x + W * 3 // 16] = 26, 26001 + seq
        flow = torch.zeros(1, T - 1, 2, H, W, dtype=torch.float64)
        flow[:, :, 0] = float(shift) + 0.25 * torch.randn(1, T - 1, H, W, generator=g, dtype=torch.float64)
        flow[:, :, 1] = 0.25 * torch.randn(1, T - 1, H, W, generator=g, dtype=torch.float64)
        conf = (torch.rand(1, T - 1, 1, H, W, generator=g, dtype=torch.float64) > 0.2).to(torch.float64)
        pairs = {}
        for step in (1, 3, 9):
            for j in range(step, T):
                pairs[f"{j - step}_{j}"] = compose_backward_flows([flow[:, k - 1] for k in range(j, j - step, -1)])
        sequences.append({"image": images, "semantic": semantic, "instance": instance, "flow_backward": flow,
                          "flow_confidence": conf, "pairs": pairs})
    with torch.device("meta"):
        vgg = torchvision.models.vgg19(weights=None)
    gv = torch.Generator().manual_seed(2)
    state = {}
    for name, tensor in vgg.state_dict().items():  # the classifier (unused by the loss) as a 1-element view
        state[name] = (torch.randn(tensor.shape, generator=gv) * (0.05 if name.endswith("weight") else 0.01)
                       if name.startswith("features.") else torch.zeros(1).expand(tensor.shape))
    torch.save(state, work / "vgg19.pth")
    torch.save(sequences, work / "data.pt")


# -------------------------------------------------------------------------------------------- their side


def official(work: Path, repo: Path, scales: int, fg: bool, dtype: str) -> None:
    """Runs in a fresh interpreter whose ``models`` package is theirs. With ``work/init`` (``--pin``), their
    networks start from the weights found there (ours, in their layout) instead of their own initialisation."""
    import torch
    import torch.nn.functional as F
    import torchvision

    torch.set_default_dtype(getattr(torch, dtype))
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.FloatTensor = lambda *size: torch.empty(*size, dtype=torch.get_default_dtype())  # type: ignore[attr-defined]
    torch.cuda.ByteTensor = lambda *size: torch.zeros(*size, dtype=torch.uint8)  # type: ignore[attr-defined]
    grid_sample = F.grid_sample
    F.grid_sample = lambda i, g, mode="bilinear", padding_mode="zeros", align_corners=None: grid_sample(  # type: ignore[assignment]
        i, g, mode=mode, padding_mode=padding_mode, align_corners=True)
    vgg_state = torch.load(work / "vgg19.pth")
    vgg19 = torchvision.models.vgg19

    def standin_vgg(pretrained: bool = False, **kwargs):  # noqa: ANN202 - their Vgg19 asks torchvision for ImageNet weights
        net = vgg19(weights=None)
        net.load_state_dict(vgg_state)
        return net

    sys.path.insert(0, str(repo))
    os.chdir(work)
    from data.base_dataset import BaseDataset
    from models import networks
    from models.vid2vid_model_D import Vid2VidModelD
    from models.vid2vid_model_G import Vid2VidModelG
    from options.train_options import TrainOptions

    networks.models.vgg19 = standin_vgg
    sys.argv = ["train.py", "--name", "case", "--checkpoints_dir", "ckpt", "--label_nc", "35", "--use_instance",
                "--n_scales_spatial", str(scales), "--gpu_ids", "-1", "--max_frames_per_gpu", str(CHUNK),
                "--n_frames_total", str(T - 2), "--dataroot", "datasets/Cityscapes/", "--debug",
                *[x for k, v in ARCH.items() for x in (f"--{k}", str(v))], *(["--fg", "--fg_labels", "26"] if fg else [])]
    opt = TrainOptions().parse(save=True)
    opt.gpu_ids, opt.n_gpus_gen = [-1], 1  # "one GPU" that is the CPU: their forward compares devices with gpu_ids[0]
    torch.manual_seed(0)
    modelG, modelD = Vid2VidModelG(), Vid2VidModelD()
    modelG.initialize(opt)
    modelD.initialize(opt)
    nets = {f"G{s}": getattr(modelG, f"netG{s}") for s in range(scales)}
    nets.update({"D": modelD.netD, **{f"D_T{s}": getattr(modelD, f"netD_T{s}") for s in range(opt.n_scales_temporal)}})
    if (work / "init").is_dir():
        for name, net in nets.items():
            net.load_state_dict(torch.load(work / "init" / f"{name}.pth"))
    for name, net in nets.items():  # as their save_network writes them
        torch.save(net.state_dict(), Path("ckpt/case") / f"latest_net_{name}.pth")
    optimizer_G, optimizer_D = modelG.optimizer_G, modelD.optimizer_D
    optimizer_D_T = [getattr(modelD, f"optimizer_D_T{s}") for s in range(opt.n_scales_temporal)]
    dataset = BaseDataset()
    dataset.opt = opt

    def loss_backward(loss, optimizer) -> None:  # train.py's loss_backward (fp16 off)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def reshape(tensors):  # noqa: ANN001, ANN202 - train.py's reshape
        if tensors is None:
            return None
        if isinstance(tensors, list):
            return [reshape(tensor) for tensor in tensors]
        _, _, ch, h, w = tensors.size()
        return tensors.contiguous().view(-1, ch, h, w)

    results: dict = {"terms": [], "weights": {}, "seconds": []}
    updates = 0
    for seq in torch.load(work / "data.pt"):
        started = time.perf_counter()
        images = seq["image"].to(torch.get_default_dtype())
        pairs = {k: v.to(images.dtype) for k, v in seq["pairs"].items()}
        conf_all = seq["flow_confidence"].to(images.dtype)

        def index(frame):  # noqa: ANN001, ANN202 - which real frame this is (all differ)
            found = [t for t in range(T) if torch.equal(images[0, t], frame)]
            assert len(found) == 1
            return found[0]

        class ReferenceFlow:  # their FlowNet2's place: flowNet(current frames, previous frames) -> flow, confidence
            def __call__(self, cur, prev):  # noqa: ANN001, ANN204
                b, n = cur.shape[:2]
                flows, confs = [], []
                for k in range(b):
                    for m in range(n):
                        i, j = index(prev[k, m]), index(cur[k, m])
                        flows.append(pairs[f"{i}_{j}"][0])
                        confs.append(conf_all[0, j - 1] if j - i == 1 else torch.ones_like(conf_all[0, 0]))
                return torch.stack(flows).view(b, n, 2, H, W), torch.stack(confs).view(b, n, 1, H, W)

        flowNet = ReferenceFlow()
        data = {"A": seq["semantic"].to(images.dtype).view(1, T, H, W), "B": images.reshape(1, T * 3, H, W),
                "inst": seq["instance"].to(images.dtype).view(1, T, H, W)}
        # ---- train.py, one sequence (their order; modelG / modelD unwrapped: one device)
        tG, tD, t_scales = opt.n_frames_G, opt.n_frames_D, opt.n_scales_temporal
        n_frames_total, n_frames_load, t_len = dataset.init_data_params(data, 1, tG)
        fake_B_prev_last, frames_all = dataset.init_data(t_scales)
        for i in range(0, n_frames_total, n_frames_load):
            input_A, input_B, inst_A = dataset.prepare_data(data, i, 1, 3)
            fake_B, fake_B_raw, flow, weight, real_A, real_Bp, fake_B_last = modelG(input_A, input_B, inst_A, fake_B_prev_last)
            real_B_prev, real_B = real_Bp[:, :-1], real_Bp[:, 1:]
            flow_ref, conf_ref = flowNet(real_B, real_B_prev)
            fake_B_prev = modelG.compute_fake_B_prev(real_B_prev, fake_B_prev_last, fake_B)
            fake_B_prev_last = fake_B_last
            losses = modelD(0, reshape([real_B, fake_B, fake_B_raw, real_A, real_B_prev, fake_B_prev, flow, weight, flow_ref, conf_ref]))
            losses = [torch.mean(x) if x is not None else 0 for x in losses]
            loss_dict = dict(zip(modelD.loss_names, losses))
            frames_all, frames_skipped = modelD.get_all_skipped_frames(frames_all, real_B, fake_B, flow_ref, conf_ref,
                                                                       t_scales, tD, n_frames_load, i, flowNet)
            loss_dict_T = []
            for s in range(t_scales):
                if frames_skipped[0][s] is not None:
                    losses = modelD(s + 1, [frame_skipped[s] for frame_skipped in frames_skipped])
                    losses = [torch.mean(x) if not isinstance(x, int) else x for x in losses]
                    loss_dict_T.append(dict(zip(modelD.loss_names_T, losses)))
            loss_G, loss_D, loss_D_T, t_scales_act = modelD.get_losses(loss_dict, loss_dict_T, t_scales)
            loss_backward(loss_G, optimizer_G)
            loss_backward(loss_D, optimizer_D)
            for s in range(t_scales_act):
                loss_backward(loss_D_T[s], optimizer_D_T[s])
            # ---- recorded
            terms = {k: float(v) for k, v in loss_dict.items()}
            for s, d in enumerate(loss_dict_T):
                terms.update({f"{k}{s}": float(v) for k, v in d.items()})
            terms["G_total"] = float(loss_G)
            terms["D_total"] = float(loss_D) + sum(float(x) for x in loss_D_T)
            results["terms"].append(terms)
            updates += 1
            if updates in CHECKED:
                results["weights"][updates] = {n: {k: v.detach().clone() for k, v in net.state_dict().items()
                                                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
                                               for n, net in nets.items()}
        results["seconds"].append(time.perf_counter() - started)  # one sequence: its chunks' updates
    results["options"] = {k: str(v) for k, v in vars(opt).items()}
    torch.save(results, work / "official.pt")


# -------------------------------------------------------------------------------------------- our side


def preset(scales: int, fg: bool) -> dict:
    """Our preset for the case: the architecture of their options above, NVIDIA's training recipe."""
    return {
        "name": "case",
        "input": {"width": W, "height": H, "sources": [
            {"name": "labels", "stage": "semantic", "encoding": "one_hot", "num_classes": 35},
            {"name": "instance", "stage": "instance", "encoding": "instance_edges"}]},
        "generator": {"ngf": ARCH["ngf"], "n_downsampling": ARCH["n_downsample_G"], "n_blocks": ARCH["n_blocks"],
                      "n_blocks_local": ARCH["n_blocks_local"], "n_scales": scales, "n_prev": 2, "norm": "batch",
                      "use_fg_prior": fg, "foreground_classes": [26], "composition": "official"},
        "discriminator": {"ndf": ARCH["ndf"], "n_layers": 3, "num_d": ARCH["num_D"], "norm": "batch",
                          "n_frames_d": 3, "n_scales_temporal": 2, "real_fake_batches": "separate",
                          "video_windows": "official"},
        "loss": {"lambda_feat": 10.0, "lambda_vgg": 10.0, "lambda_flow": 10.0, "lambda_fake_warp": 10.0,
                 "fake_warp_first": "chunk_last",
                 "raw_image_losses": True, "masked_l1": "masked_mean", "flow_epe_per_scale": True,
                 "vgg_input": "official"},
        "train": {"lr": ARCH["lr"], "beta1": 0.5, "beta2": 0.999, "frames_per_step": CHUNK, "initial_seq_len": T,
                  "max_seq_len": T, "detach_previous": True, "previous_frames": "per_scale", "schedule": "official"},
    }


def ours(work: Path, scales: int, fg: bool, dtype: str, own_init: bool = False, export: bool = False,
         precision: str = "fp32") -> dict:
    """Our trainer from the imported files (``own_init``: from its own seeded initialisation), on the same
    sequences; terms per update, weights after 1 and 3, seconds per sequence. ``export``: only write its
    initial weights in their layout to ``work/init`` (for ``--pin``) and return. ``precision``: "fp32" (the
    exact mode) or "bf16" (the fast training mode: bf16 autocast and channels-last, models/training/precision.py)."""
    import torch
    import yaml

    from models.training.precision import autocast, prepare_modules

    from models.vid2vid.losses import VGGLoss
    from models.vid2vid.official_import import composite_key_map, import_official, multiscale_key_map
    from models.vid2vid.trainer import Vid2VidTrainer
    from models.weights import REGISTRY, file_sha256

    torch.set_default_dtype(getattr(torch, dtype))
    try:
        from models.vid2vid.config import ModelConfig

        (work / "case.yaml").write_text(yaml.safe_dump(preset(scales, fg)))
        if own_init:
            data = preset(scales, fg)
            data["generator"]["test_norm_stats"] = "batch"
            data["discriminator"].update(scale_widths="official", video_flow_scale=1 / 20)
            config, state = ModelConfig.model_validate(data), None
        else:
            import_official(work / "ckpt" / "case", work / "model.pt", preset=work / "case.yaml")
            state = torch.load(work / "model.pt", weights_only=True)
            config = ModelConfig.model_validate(state["config"])
        weights = work / "weights"
        weights.mkdir(exist_ok=True)
        spec = REGISTRY["vgg19"]
        (weights / spec.filename).write_bytes((work / "vgg19.pth").read_bytes())
        vgg = VGGLoss(weights, dataclasses.replace(spec, sha256=file_sha256(weights / spec.filename)))
        trainer = Vid2VidTrainer(config, vgg_loss=vgg)
        if state is not None:
            trainer.load_weights(state)
        generator, discriminators = trainer.G.generator, trainer.D
        labels = config.input.source_channels

        def official_weights(buffers: bool = False) -> dict:
            g = generator.state_dict()
            out = {f"G{s}": {o: g[k].detach().clone() for o, k in m.items()} for s, m in composite_key_map(generator).items()}
            d = discriminators.state_dict()
            out["D"] = {o: d[k].detach().clone() for o, k in multiscale_key_map(d, "image.", config.discriminator.num_d, "intermediate").items()}
            for o, k in multiscale_key_map(d, "image.", config.discriminator.num_d, "intermediate").items():
                if k.endswith("layers.0.0.weight"):  # ours cat(image, labels) -> theirs cat(labels, image)
                    out["D"][o] = torch.cat([d[k][:, 3:], d[k][:, :3]], dim=1)
            for s in range(config.discriminator.n_scales_temporal):
                out[f"D_T{s}"] = {o: d[k].detach().clone() for o, k in
                                  multiscale_key_map(d, f"video.scales.{s}.", config.discriminator.num_d, "intermediate").items()}
            return {n: {k: v for k, v in w.items() if buffers or not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
                    for n, w in out.items()}

        if export:
            (work / "init").mkdir(exist_ok=True)
            for name, tensors in official_weights(buffers=True).items():
                torch.save(tensors, work / "init" / f"{name}.pth")
            return {}

        results: dict = {"terms": [], "weights": {}}
        step = trainer.opt_D.step
        updates = [0]

        def counted_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - an update ends with D's step
            out = step(*args, **kwargs)
            updates[0] += 1
            if updates[0] in CHECKED:
                results["weights"][updates[0]] = official_weights()
            return out

        trainer.opt_D.step = counted_step  # type: ignore[method-assign]
        del labels
        cpu = torch.device("cpu")
        prepare_modules(cpu, precision, trainer.G, trainer.D)  # type: ignore[arg-type]
        results["seconds"] = []
        for seq in torch.load(work / "data.pt"):
            batch = {k: v for k, v in seq.items() if k != "pairs"}
            started = time.perf_counter()
            with autocast(cpu, precision):  # type: ignore[arg-type]
                trainer.train_step(batch)
            results["seconds"].append(time.perf_counter() - started)
            results["terms"].extend(trainer.chunk_terms)
        return results
    finally:
        torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------------------------- compare


def rel(a, b) -> float:  # noqa: ANN001
    """max |a - b| / max(|b|, tiny) (scalars or tensors)."""
    import torch

    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / max(scale, 1e-12) if b.numel() else 0.0


def no_gradient(key: str, tensors: dict) -> bool:
    """A convolution's bias directly followed by batch norm: its exact gradient is 0, and Adam turns the
    rounding noise of that 0 into steps of up to lr, different on each side (and without any effect)."""
    head, index, name = key.rsplit(".", 2) if key.count(".") >= 2 else (key, "", "")
    if name != "bias" or not index.isdigit():
        return False
    after = tensors.get(f"{head}.{int(index) + 1}.weight")
    return after is not None and after.dim() == 1


def compare(theirs: dict, mine: dict, n_temporal: int) -> tuple[list[tuple], dict]:
    """Rows (update, term, their term, theirs, ours, rel) and the worst relative differences: per update of the
    terms, and of the weights after each checked update (all, and without the no-gradient biases)."""
    rows, worst = [], {}
    assert len(theirs["terms"]) == len(mine["terms"]), (len(theirs["terms"]), len(mine["terms"]))
    for u, (t, o) in enumerate(zip(theirs["terms"], mine["terms"]), start=1):
        pairs = [(name, their, factor) for name, (their, factor) in TERMS.items()]
        for s in range(n_temporal):
            pairs += [(f"{name}{s}", f"{their}{s}", factor) for name, (their, factor) in TERMS_T.items()]
        pairs += [("G_total", "G_total", 1), ("D_total", "D_total", 1)]
        worst[f"terms {u}"] = 0.0
        for name, their, factor in pairs:
            if their not in t:  # a temporal scale without a window in this chunk: neither side has it
                assert name not in o or o[name] == 0, (u, name)
                continue
            value = o.get(name, 0.0) * factor
            r = rel(value, t[their]) if abs(t[their]) > 1e-12 or abs(value) > 1e-12 else 0.0
            rows.append((u, name, their, t[their], value, r))
            worst[f"terms {u}"] = max(worst[f"terms {u}"], r)
    for u in CHECKED:
        worst[f"weights {u}"] = worst[f"weights {u} (gradient-free biases excluded)"] = 0.0
        for net, tensors in theirs["weights"][u].items():
            assert set(tensors) == set(mine["weights"][u][net]), net
            for key, value in tensors.items():
                r = rel(mine["weights"][u][net][key], value)
                worst[f"weights {u}"] = max(worst[f"weights {u}"], r)
                if not no_gradient(key, tensors):
                    worst[f"weights {u} (gradient-free biases excluded)"] = max(worst[f"weights {u} (gradient-free biases excluded)"], r)
    return rows, worst


def noise_floor(work: Path, repo: Path, scales: int, fg: bool, dtype: str, theirs: dict) -> dict:
    """Their recipe's own sensitivity: their code again from their initial weights (``ckpt/case``, written by the
    first run) with every weight moved by one unit in the last place (x(1 +- eps of the dtype), a fixed random
    sign), and the worst relative differences from their first run, per update (terms, by their names) and after
    each checked update (weights). A difference of ours that stays below this is rounding, amplified by their
    own recipe (GAN updates with Adam), not a difference of algorithm."""
    import torch

    eps = torch.finfo(getattr(torch, dtype)).eps
    signs = torch.Generator().manual_seed(1)
    (work / "init").mkdir()
    for path in sorted((work / "ckpt" / "case").glob("latest_net_*.pth")):
        moved = {k: v * (1 + eps * (2 * torch.randint(0, 2, v.shape, generator=signs) - 1).to(v.dtype))
                 if v.is_floating_point() else v for k, v in torch.load(path).items()}
        torch.save(moved, work / "init" / f"{path.stem.removeprefix('latest_net_')}.pth")
    again = train_theirs(work, repo, scales, fg, dtype)
    shutil.rmtree(work / "init")
    worst = {}
    for u, (t, o) in enumerate(zip(theirs["terms"], again["terms"]), start=1):
        worst[f"terms {u}"] = max((rel(o[k], v) for k, v in t.items() if abs(v) > 1e-12), default=0.0)
    for u in CHECKED:
        worst[f"weights {u}"] = worst[f"weights {u} (gradient-free biases excluded)"] = 0.0
        for net, tensors in theirs["weights"][u].items():
            for key, value in tensors.items():
                r = rel(again["weights"][u][net][key], value)
                worst[f"weights {u}"] = max(worst[f"weights {u}"], r)
                if not no_gradient(key, tensors):
                    worst[f"weights {u} (gradient-free biases excluded)"] = max(
                        worst[f"weights {u} (gradient-free biases excluded)"], r)
    return worst


def train_theirs(work: Path, repo: Path, scales: int, fg: bool, dtype: str) -> dict:
    """Their side of a case (``official``), in a fresh interpreter whose ``models`` package is theirs; its results."""
    code = subprocess.call([sys.executable, __file__, "--side", "official", "--work", str(work), "--official-repo",
                            str(repo), "--scales", str(scales), "--fg", "on" if fg else "off", "--dtype", dtype,
                            "--size", f"{H}x{W}"],
                           stdout=subprocess.DEVNULL, cwd=work, env={**os.environ, "PYTHONPATH": ""})
    if code:
        raise SystemExit(f"error: their training run failed (exit {code}); rerun with --side official to see it")
    import torch

    return torch.load(work / "official.pt", weights_only=False)


def timing(repo: Path, scales: int, fg: bool) -> dict[str, float]:
    """Seconds per training sequence (its chunks' G, D and D_T updates), median over the sequences after the
    first (warm-up), for their code, our exact float32 mode and our fast mode, at identical architecture,
    weights and inputs; with each of our modes' worst relative term difference from theirs at update 1."""
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_inputs(work)
        theirs = train_theirs(work, repo, scales, fg, "float32")
        out = {"official_s": statistics.median(theirs["seconds"][1:])}
        for precision in ("fp32", "bf16"):
            mine = ours(work, scales, fg, "float32", precision=precision)
            out[f"ours_{precision}_s"] = statistics.median(mine["seconds"][1:])
            out[f"ours_{precision}_term_diff_update_1"] = compare(theirs, mine, 2)[1]["terms 1"]
    return out


def run_case(repo: Path, scales: int, fg: bool, dtype: str, verbose: bool, own_init: bool = False,
             floor: bool = False) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_inputs(work)
        if own_init:
            ours(work, scales, fg, dtype, own_init=True, export=True)
        theirs = train_theirs(work, repo, scales, fg, dtype)
        mine = ours(work, scales, fg, dtype, own_init=own_init)
        rows, worst = compare(theirs, mine, 2)
        floor_worst = noise_floor(work, repo, scales, fg, dtype, theirs) if floor else None
    label = f"scales={scales} fg={'on' if fg else 'off'} {dtype}"
    if verbose:
        print(f"\n{label}: update | our term | their term | theirs | ours | rel diff")
        for u, name, their, a, b, r in rows:
            print(f"  {u} | {name:12s} | {their:14s} | {a:12.6g} | {b:12.6g} | {r:.2g}")
    print(f"{label}: worst relative difference: " + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()), flush=True)
    if floor_worst is not None:
        print(f"{label}: their code vs itself, every initial weight moved by 1 ulp: " +
              ", ".join(f"{k} {v:.2g}" for k, v in floor_worst.items()), flush=True)
        above = [k for k, v in worst.items() if v > floor_worst[k]]
        print(f"{label}: ours vs theirs above their own 1-ulp drift: {above or 'nowhere'}", flush=True)
        worst = {**worst, **{f"floor {k}": v for k, v in floor_worst.items()}}
    pinned = {f"{u}:{name}": a for u, name, _, a, _, _ in rows}  # their values
    return worst, pinned


# -------------------------------------------------------------------------------------------- schedule


STREET_SCRIPTS = {  # scripts/street/train_2048.sh, train_1024.sh (+ train_options defaults); Cityscapes: 30 frames
    "train_2048.sh": {"n_frames_total": 4, "niter_step": 1, "niter": 5, "niter_decay": 5, "niter_fix_global": 5,
                      "n_scales_spatial": 3, "n_gpus_gen": 4, "lr": 0.00005},
    "train_1024.sh": {"n_frames_total": 4, "niter_step": 2, "niter": 10, "niter_decay": 10, "niter_fix_global": 10,
                      "n_scales_spatial": 2, "n_gpus_gen": 4, "lr": 0.0001},
}
SEQUENCE_FRAMES = 30


def official_schedule(repo: Path, script: str) -> list[tuple[int, int, bool, float]]:
    """(epoch (1-based), frames read per sequence, coarse scales training, lr of G) from their own functions."""
    import argparse as ap

    sys.path.insert(0, str(repo))
    import numpy as np
    import torch
    from data.base_dataset import BaseDataset, get_video_params
    from models.base_model import BaseModel
    from models.models import update_models

    o = STREET_SCRIPTS[script]
    opt = ap.Namespace(n_frames_G=3, max_frames_per_gpu=1, batchSize=1, max_t_step=1, isTrain=True, dataset_mode="temporal",
                       debug=False, max_frames_backpropagate=1, beta1=0.5, **o)
    dataset = BaseDataset()
    dataset.opt, dataset.seq_len_max, dataset.n_frames_total = opt, SEQUENCE_FRAMES, opt.n_frames_total

    class Recorder:  # modelG.module / modelD.module as update_models calls them; their BaseModel sets the lr
        def __init__(self) -> None:
            self.opt, self.old_lr, self.all_scales = opt, opt.lr, opt.niter_fix_global == 0
            self.optimizer_G = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=opt.lr)
            self.optimizer_D = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=opt.lr)

        @property
        def lr(self) -> float:
            return self.optimizer_G.param_groups[0]["lr"]

        def update_learning_rate(self, epoch: int, model: str) -> None:
            BaseModel.update_learning_rate(self, epoch, model)

        def update_training_batch(self, ratio: int) -> None:
            pass

        def update_fixed_params(self) -> None:
            self.all_scales = True

    g = ap.Namespace(module=Recorder())
    d = ap.Namespace(module=Recorder())
    rows = []
    np.random.seed(0)
    for epoch in range(1, opt.niter + opt.niter_decay + 1):
        frames, _, _ = get_video_params(opt, dataset.n_frames_total, SEQUENCE_FRAMES, 0)
        rows.append((epoch, frames, g.module.all_scales, g.module.lr))
        update_models(opt, epoch, g, d, ap.Namespace(dataset=dataset))
    return rows


def our_schedule(script: str) -> list[tuple[int, int, bool, float]]:
    from models.vid2vid.config import load_model_config
    from models.vid2vid.trainer import Vid2VidTrainer

    o = STREET_SCRIPTS[script]
    config = load_model_config("tiny", generator={"n_scales": o["n_scales_spatial"], "ngf": 8, "n_downsampling": 1,
                                                  "n_blocks": 1, "n_blocks_local": 1},
                               input={"width": 64, "height": 32}, loss={"use_vgg": False},
                               train={"schedule": "official", "initial_seq_len": o["n_frames_total"] + 2,
                                      "max_seq_len": SEQUENCE_FRAMES, "epochs_per_doubling": o["niter_step"],
                                      "epochs_finest_only": o["niter_fix_global"], "frames_per_step": o["n_gpus_gen"],
                                      "epochs": o["niter"] + o["niter_decay"], "lr_decay_epochs": o["niter_decay"],
                                      "lr": o["lr"]})
    trainer = Vid2VidTrainer(config)
    rows = []
    for epoch in range(config.train.epochs):
        stage = trainer.set_epoch(epoch)
        rows.append((epoch + 1, min(SEQUENCE_FRAMES, stage.seq_len), not stage.finest_only,
                     trainer.opt_G.param_groups[0]["lr"]))
    return rows


def compare_schedules(repo: Path) -> bool:
    same = True
    for script in STREET_SCRIPTS:
        code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import importlib.util as u; "
                "s = u.spec_from_file_location('c', sys.argv[2]); m = u.module_from_spec(s); s.loader.exec_module(m); "
                "print(json.dumps(m.official_schedule(__import__('pathlib').Path(sys.argv[1]), sys.argv[3])))")
        out = subprocess.run([sys.executable, "-c", code, str(repo), __file__, script], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": ""}, cwd=tempfile.gettempdir())
        if out.returncode:
            raise SystemExit(f"error: their schedule could not be run: {out.stderr.strip().splitlines()[-1]}")
        theirs = [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]
        mine = our_schedule(script)
        print(f"\n{script}: epoch | frames per sequence (theirs / ours) | all scales train | lr (theirs / ours)")
        for (e, f1, a1, l1), (_, f2, a2, l2) in zip(theirs, mine, strict=True):
            ok = f1 == f2 and a1 == a2 and abs(l1 - l2) <= 1e-12
            same &= ok
            print(f"  {e:2d} | {f1:2d} / {f2:2d} | {str(a1):5s} / {str(a2):5s} | {l1:.3g} / {l2:.3g}{'' if ok else '  DIFFERS'}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="a checkout of github.com/NVIDIA/vid2vid")
    parser.add_argument("--dtype", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    parser.add_argument("--scales", nargs="+", type=int, choices=[1, 2], default=[1, 2])
    parser.add_argument("--fg", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--quiet", action="store_true", help="only the worst difference per case")
    parser.add_argument("--pin", type=Path, default=None,
                        help="instead: one tiny case (16x32, 1 scale, fg on, float32) started from our seeded weights "
                             "in their layout; write their per-term values to this JSON (the suite's pinned losses)")
    parser.add_argument("--time", action="store_true",
                        help="instead: seconds per training sequence, theirs vs ours (exact float32 and fast bf16 "
                             "modes), first --scales / --fg case, float32, at --size HxW (benchmarks/model.py --mode "
                             "train --official-code runs this)")
    parser.add_argument("--noise-floor", action="store_true",
                        help="also run their code a second time from their initial weights moved by one unit in the "
                             "last place, and print how far it drifts from their first run (their recipe's own "
                             "sensitivity to rounding, the floor for our later updates)")
    parser.add_argument("--sequences", type=int, default=None, help="sequences trained per side (default 2; --time: 5)")
    parser.add_argument("--size", default=None, help="HxW of the case (default 32x64)")
    parser.add_argument("--side", choices=["both", "official"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global H, W, N_SEQ
    if args.size:
        H, W = map(int, args.size.split("x"))
    N_SEQ = args.sequences or (5 if args.time else N_SEQ)
    if args.side == "official":
        official(args.work, args.official_repo.resolve(), args.scales[0], args.fg[0] == "on", args.dtype[0])
        return 0
    repo = args.official_repo.resolve()
    if not (repo / "models" / "vid2vid_model_D.py").is_file():
        parser.error(f"--official-repo {args.official_repo}: no models/vid2vid_model_D.py there")
    sys.path.insert(0, str(REPO_ROOT))
    if args.time:
        import torch

        t = timing(repo, args.scales[0], args.fg[0] == "on")
        print(f"mode=vs-official train size={H}x{W} scales={args.scales[0]} fg={args.fg[0]} "
              f"threads={torch.get_num_threads()} sequences={N_SEQ - 1} (after 1 warm-up; {T - 2} generated frames in "
              f"chunks of {CHUNK}) official_s_per_seq={t['official_s']:.3f} "
              f"ours_fp32_s_per_seq={t['ours_fp32_s']:.3f} ours_bf16_s_per_seq={t['ours_bf16_s']:.3f} "
              f"speedup_fp32={t['official_s'] / t['ours_fp32_s']:.2f}x speedup_bf16={t['official_s'] / t['ours_bf16_s']:.2f}x "
              f"max_rel_term_diff_update1_fp32={t['ours_fp32_term_diff_update_1']:.2g} "
              f"max_rel_term_diff_update1_bf16={t['ours_bf16_term_diff_update_1']:.2g}", flush=True)
        return 0
    failed = []
    if args.pin is not None:
        H, W = PIN_SIZE
        worst, pinned = run_case(repo, 1, True, "float32", not args.quiet, own_init=True)
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        args.pin.write_text(json.dumps({"official_commit": commit, "size": [H, W], "preset": preset(1, True),
                                        "worst_relative_difference": worst,
                                        "terms": pinned}, indent=1) + "\n")
        print(f"wrote {args.pin}")
        return 0 if max(v for k, v in worst.items() if k.startswith("terms")) <= 1e-4 else 1
    for dtype in args.dtype:
        limit = 1e-4 if dtype == "float32" else 1e-8
        for scales in args.scales:
            for fg in args.fg:
                worst, _ = run_case(repo, scales, fg == "on", dtype, not args.quiet, floor=args.noise_floor)
                keys = [*(f"terms {u}" for u in CHECKED), *(f"weights {u} (gradient-free biases excluded)" for u in CHECKED)]
                checked, floors = [worst[k] for k in keys], [worst.get(f"floor {k}", 0.0) for k in keys]
                if any(v > max(limit, floor) for v, floor in zip(checked, floors)):
                    failed.append(f"scales={scales} fg={fg} {dtype}")
    schedules_equal = compare_schedules(repo)
    floor_note = "; and over their code's own 1-ulp drift" if args.noise_floor else ""
    print(f"\nschedules equal: {schedules_equal}; cases over the limit (1e-4 float32, 1e-8 float64; terms and "
          f"weights at updates {'/'.join(map(str, CHECKED))}{floor_note}): {failed or 'none'}")
    return 0 if schedules_equal and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
